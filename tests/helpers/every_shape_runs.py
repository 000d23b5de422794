"""All five stage notebooks on each task shape but pair_score (the smoke run's), on a tiny model,
in one shared kernel: `python tests/helpers/every_shape_runs.py WORKDIR` writes WORKDIR/runs/<shape>/.

The test suite starts this in the background when collection ends, beside the smoke run, so that it
uses the core the unit tests leave free; end_to_end/test_pipeline.py checks what it wrote."""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent  # tests/
SHAPES = ("pair_binary", "pair_class", "triplet", "retrieval", "unlabeled")


def shape_cases(workdir: Path) -> dict[str, list[str]]:
    data = HERE / "data"
    triplets = workdir / "triplets.csv"
    triplets.write_text("anchor,positive,negative\n" + "".join(
        f"question {i} about topic {i % 7},answer {i},unrelated {i}\n" for i in range(40)))
    texts = workdir / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": f"an unlabeled sentence number {i}"}) + "\n" for i in range(40)))
    swap_rule = "data.augment.rules=[{kind: swap, words: [said, denied], label: negative}]"
    return {
        # One shape sweeps a middle alpha and saves it as model_final/; the others keep the ends only.
        "pair_binary": [f"data.source={data / 'mrpc-train-sample.tsv'}", swap_rule,
                        "eval.interpolation_alphas=[0, 0.5, 1]", "eval.final_alpha=0.5"],
        "pair_class": [f"data.source={data / 'snli-sample.tsv'}", "data.group_by=premise_id",
                       "data.labels=[entailment, neutral, contradiction]"],
        "triplet": [f"data.source={triplets}"],
        "retrieval": [f"data.source={data / 'scifact-mini'}"],
        "unlabeled": [f"data.source={texts}", "data.augment.simcse=true"],
    }


def main(workdir: Path) -> int:
    sys.path.insert(0, str(HERE))
    from helpers.tiny_model import build_tiny_model_folder
    from sttune_helpers.config import load_preset
    from sttune_helpers.rundir import STAGES
    from sttune_helpers.runner.pipeline import ensure_kernel, prepare_run_dir, run_stages, stage_kernel

    workdir.mkdir(parents=True, exist_ok=True)
    tiny = build_tiny_model_folder(workdir / "tiny")
    tiny_settings = [f"model.name={tiny}", "train.max_steps=2", "train.batch_size=8", "eval.bootstrap_samples=50",
                     "eval.reference_max_pairs=40", "eval.interpolation_alphas=[0, 1]", "viz.max_points=40",
                     "viz.n_epochs=30", "viz.n_clusters=3"]
    failed = []
    with stage_kernel(ensure_kernel()) as kernel:
        for shape, overrides in shape_cases(workdir).items():
            config = load_preset("smoke").with_overrides(["data.shape=auto", *tiny_settings, *overrides])
            run = prepare_run_dir(workdir / "runs", shape, config, continuing=False, overwrite=False)
            results = run_stages(run, STAGES, kernel=kernel)
            if [r.status for r in results] != ["completed"] * len(STAGES):
                failed.append(shape)
    print(f"shapes that failed: {', '.join(failed)}" if failed else "every shape completed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
