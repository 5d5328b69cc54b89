#!/bin/bash
# The movie study's rerun in two lanes, one run each at a time, so that both cores stay busy
# across stage boundaries (where a stage's last run alone would leave one idle):
#
#   setsid bash lanes.sh a > lane-a.log 2>&1 &
#   setsid bash lanes.sh b [PID] > lane-b.log 2>&1 &     # after process PID exits, when given
#   bash lanes.sh save                                    # at a stop, before committing
#
# Lane a: DeComFL's finals, FedKSeed, FedKSeed-Pro. Lane b: HiSo's search (two runs at a time
# while it lasts), HiSo's finals, the global-H ablation. Then DeComFL at HiSo's rate (read from
# HiSo's search; its finals only are run): one seed in each lane, and seed 3 in whichever lane
# gets there first (the other finds it finished, and skips it, or in use, refused: that lane ends).
# Each command continues where it stopped (finished runs are skipped, stopped ones resume=auto
# from their checkpoint).
# A run whose committed records (search/, finals/, and running/: an unfinished run's trajectory
# and metrics, committed at a session's stop) are here but not in OUT is copied into OUT first,
# so that on a fresh machine the rerun continues from them (an unfinished one replays its
# trajectory from the starting model) instead of starting again.
# CODE is the checkout whose code runs (a pinned worktree, so that edits elsewhere never reach a
# run that starts mid-edit), OUT the runs' folder, PY the environment's python.
set -x
HERE=$(cd "$(dirname "$0")" && pwd)
CODE=${CODE:-/work/runs/code} OUT=${OUT:-/work/runs/movie-study} PY=${PY:-/work/main/.venv/bin/python}
if [ "$1" = save ]; then
  # each run's records in OUT (no checkpoints) into this folder: a finished run's into search/
  # (seed 0) or finals/, an unfinished one's (its trajectory and metrics) into running/
  for run in "$OUT"/*-s[0-9]*/; do
    run=${run%/} name=$(basename "$run")
    [ -f "$run/trajectory.bin" ] || continue
    rm -rf "$HERE/running/$name"
    if "$PY" -c 'import json, sys; s = json.load(open(sys.argv[1]))
sys.exit(s.get("status", "finished") != "finished")' "$run/summary.json" 2>/dev/null; then
      case $name in *-s0) dest=$HERE/search/$name ;; *) dest=$HERE/finals/$name ;; esac
      [ -e "$dest" ] && continue
      mkdir -p "$dest" && cp -a "$run"/{.hydra,metrics.jsonl,summary.json,trajectory.bin} "$dest/"
    else
      dest=$HERE/running/$name
      mkdir -p "$dest" && cp -a "$run"/{.hydra,trajectory.bin,metrics.jsonl} "$dest/"
    fi
  done
  exit 0
fi
# setsid gives this script its own session and scheduling autogroup, in which nice alone does
# nothing; started inside the caller's session, lowering the autogroup would lower the caller's
# whole session (its shell and everything it starts after) to nice 19: refuse
if [ "$(ps -o sid= -p $$ | tr -d ' ')" != "$$" ]; then
  echo "lanes.sh $1: start it with setsid (its own session), as in the header" >&2; exit 2
fi
echo 19 > /proc/self/autogroup
if [ -n "$2" ]; then while kill -0 "$2" 2>/dev/null; do sleep 30; done; fi
mkdir -p "$OUT"
for run in "$HERE"/search/* "$HERE"/finals/* "$HERE"/running/*; do
  if [ -d "$run" ] && [ ! -e "$OUT/$(basename "$run")" ]; then cp -a "$run" "$OUT/"; fi
done
cd "$CODE" || exit 1
# the movie-review data is where `make setup` put it, beside the environment (CODE, a worktree,
# has none of its own)
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 PYTHONPATH=$CODE
export HISO_DATA_DIR=${HISO_DATA_DIR:-$(dirname "$(dirname "$(dirname "$PY")")")/.cache/hiso}
R="nice -n 19 $PY scripts/reproduce.py movie-study --out $OUT"
case "$1" in
a)
  $R --methods decomfl --stage final &&
  $R --methods fedkseed --stage search &&
  $R --methods fedkseed --stage final &&
  $R --methods fedkseed-pro --stage search &&
  $R --methods fedkseed-pro --stage final &&
  $R --methods decomfl-hiso-rate --stage final --seeds 1 &&
  $R --methods decomfl-hiso-rate --stage final --seeds 3 ;;
b)
  $R --jobs 2 --methods hiso --stage search &&
  $R --methods hiso --stage final &&
  $R --methods hiso-global --stage search &&
  $R --methods hiso-global --stage final &&
  $R --methods decomfl-hiso-rate --stage final --seeds 2 &&
  $R --methods decomfl-hiso-rate --stage final --seeds 3 ;;
*) echo "usage: lanes.sh a|b [PID], or lanes.sh save" >&2; exit 2 ;;
esac
