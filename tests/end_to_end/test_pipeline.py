"""End to end: the five notebooks through papermill, as `sttune run` executes them."""

import json
import re
import shutil

import nbformat
import pytest
import yaml
from conftest import REPO, sttune

from sttune_helpers.config import RunConfig
from sttune_helpers.rundir import NOTEBOOKS, STAGES

pytestmark = pytest.mark.slow


def test_smoke_run_writes_every_artifact(smoke_run):
    run_dir, result = smoke_run
    for stage in STAGES:
        assert f"{stage:<15} done in" in result.stdout

    config = RunConfig.from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    assert config.data.max_train_rows == 128

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [manifest["stages"][s]["status"] for s in STAGES] == ["completed"] * 5
    assert all(manifest["stages"][s]["seconds"] > 0 for s in STAGES)
    assert manifest["seed"] == 42 and "sentence-transformers" in manifest["versions"]
    # The run ends with where its time went; the parts add up to the stages' wall times and the kernel's start.
    assert "where the time went" in result.stdout
    timing = json.loads((run_dir / "time_report.json").read_text())
    assert timing["untimed_stages"] == {} and {"training steps", "validation", "papermill and kernel"} <= {
        p["part"] for p in timing["parts"]}
    walls = sum(manifest["stages"][s]["wall_seconds"] + manifest["stages"][s].get("kernel_start_seconds", 0)
                for s in STAGES)
    assert timing["total_seconds"] == pytest.approx(walls, abs=0.5)

    for split, rows in {"train": 128, "validation": 64, "test": 64}.items():
        lines = (run_dir / "data" / f"{split}.jsonl").read_text().splitlines()
        assert len(lines) == rows
        assert set(json.loads(lines[0])) == {"sentence1", "sentence2", "score"}
    report = json.loads((run_dir / "data" / "report.json").read_text())
    assert report["score_scale"]["original"] == [0.0, 5.0]

    plan = json.loads((run_dir / "plan.json").read_text())
    # 128 training pairs, below CoSENT's 5,000, but the pair_score recipe's anchor was measured with CoSENTLoss
    assert plan["loss"]["name"] == "CoSENTLoss" and "train.general_anchor" in plan["loss"]["chosen_by"]
    assert {a["name"] for a in plan["alternatives"]} == {"CosineSimilarityLoss", "AnglELoss"}
    check_shape_recipe_run(run_dir, "pair_score", kept={"train.epochs": 1})  # the smoke preset's one epoch

    training = json.loads((run_dir / "training.json").read_text())
    assert training["global_step"] == 4 and training["best_checkpoint"]  # 128 pairs in the recipe's batches of 32
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert (run_dir / "training_curves.png").stat().st_size > 10_000

    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(run_dir / "model"))
    assert model.encode(["a test sentence"]).shape == (1, 384)
    assert "CoSENTLoss" in (run_dir / "model" / "README.md").read_text()

    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["task"] == "pair_score" and metrics["primary_metric"] == "spearman_cosine"
    assert metrics["precision"] == "fp32"  # eval.precision's default: the reported figures are exact
    assert metrics["n_test"] == 64
    for name in ("base", "fine_tuned"):
        result = metrics["models"][name]["metrics"]["spearman_cosine"]
        assert 0 < result["value"] <= 1 and result["ci95"][0] <= result["value"] <= result["ci95"][1]
    comparison = metrics["comparisons"][0]
    assert (comparison["a"], comparison["b"]) == ("fine_tuned", "base") and 0 < comparison["p_value"] <= 1
    assert (run_dir / "eval" / "comparison.png").stat().st_size > 10_000
    from sttune_helpers.evaluation import validate_report

    validate_report(metrics)
    # Trained on STS-B: SNLI is the STS part, and the record says why STS-B was left out.
    parts = metrics["reference"]["parts"]
    assert set(parts) == {"snli", "squad"} and all(part["n_test"] == 100 for part in parts.values())
    assert any(e["part"] == "stsb" and "own source" in e["reason"] for e in metrics["reference"]["excluded"])
    assert [row["alpha"] for row in metrics["interpolation"]] == [0.0, 0.5, 1.0]
    # model/ is the selection's choice; the sweep mixes the pure fine-tuned model with the base.
    selection = training["selection"]
    assert selection["chosen"] in [c["name"] for c in selection["candidates"]]
    assert selection["reference"]["parts"] == ["snli-selection", "squad-selection"]
    chose_another = selection["differs_from_fine_tuned"]
    assert ("before_selection" in metrics["models"]) == chose_another == (run_dir / "model_finetuned").is_dir()
    pure = metrics["models"]["before_selection" if chose_another else "fine_tuned"]
    assert metrics["interpolation"][-1]["task"] == pure["metrics"]["spearman_cosine"]["value"]
    assert (run_dir / "eval" / "selection.png").stat().st_size > 10_000
    assert len((run_dir / "eval" / "errors.csv").read_text().splitlines()) == 65

    png = run_dir / "viz" / "umap_base_vs_fine_tuned.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000

    for notebook in NOTEBOOKS.values():
        executed = nbformat.read(run_dir / "notebooks" / notebook, as_version=4)
        assert not executed.metadata["papermill"]["exception"]
        code = [c for c in executed.cells if c.cell_type == "code"]
        assert all(c.metadata["papermill"]["status"] == "completed" for c in code), notebook
        assert not [o for c in code for o in c.outputs if o.output_type == "error"], notebook


# Lines a normal run may write to stderr under a cell, each with the reason it cannot be avoided.
# None today: the package reports on stdout (core/reporting.py) and known third-party warnings are
# avoided or filtered where they arise (viz/maps.py for UMAP's).
EXPECTED_STDERR: tuple[str, ...] = ()


def test_executed_notebooks_show_no_stderr(smoke_run):
    """A red stderr box under a cell of a normal run reads as a failure to the user."""
    run_dir, _ = smoke_run
    unexpected = {}
    for notebook in NOTEBOOKS.values():
        executed = nbformat.read(run_dir / "notebooks" / notebook, as_version=4)
        for cell in executed.cells:
            for output in cell.get("outputs", []):
                if output.output_type == "stream" and output.name == "stderr":
                    lines = [line for line in output.text.splitlines() if line.strip() and line not in EXPECTED_STDERR]
                    if lines:
                        unexpected.setdefault(f"{notebook} cell {cell.id}", []).extend(lines)
    assert not unexpected, json.dumps(unexpected, indent=1)


def test_smoke_run_shows_progress_while_it_trains(smoke_run):
    """Piped output (the fixture's stdout is a file): plain progress lines between the training stage's
    start and end, with step / total, the time, and the validation metric the trainer logged."""
    run_dir, result = smoke_run
    assert "\r" not in result.stdout and "sttune-progress" not in result.stdout
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("[3/5] training"))
    end = next(i for i, line in enumerate(lines) if "training        done in" in line)
    during = lines[start + 1:end]
    steps = [re.match(r" +training (\d+)/4 steps \((\d+)%\), (\S+) elapsed(, (\S+) left)?(; (.*))?$", line)
             for line in during if line.lstrip().startswith("training ")]
    assert steps and all(steps), during
    assert steps[0].group(1) == "1" and steps[0].group(5)  # the first step at once, with the time left
    training = json.loads((run_dir / "training.json").read_text())
    logged = next(e["eval_validation_spearman_cosine"] for e in training["log_history"]
                  if "eval_validation_spearman_cosine" in e)
    assert steps[-1].group(1) == "4" and steps[-1].group(7) == f"validation spearman_cosine {logged:.4f}"
    # Model selection: a line per candidate scored on validation.
    candidates = training["selection"]["candidates"]
    # (the total shrinks to what was scored where lower mixes were left unscored)
    scored = [line for line in during if re.match(r" +model selection \d+/\d+ candidates", line)]
    assert len(scored) >= len(candidates)
    assert all(f"{c['name']}: validation spearman_cosine {c['validation']:.4f}" in result.stdout for c in candidates)
    # The lines were for the terminal: the executed notebook keeps its own output only.
    assert "sttune-progress" not in (run_dir / "notebooks" / NOTEBOOKS["training"]).read_text()


def test_base_metric_matches_the_library_evaluator(smoke_run):
    """Our bootstrap metrics are computed by hand; the point estimate must equal the library's."""
    run_dir, _ = smoke_run
    from sentence_transformers import SentenceTransformer

    from sttune_helpers.data import load_split
    from sttune_helpers.evaluation import build_evaluator
    from sttune_helpers.rundir import RunDir

    test = load_split(RunDir(run_dir), "test")
    evaluator = build_evaluator("pair_score", test, name="test")
    library = evaluator(SentenceTransformer(str(run_dir / "model")))["test_spearman_cosine"]
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["models"]["fine_tuned"]["metrics"]["spearman_cosine"]["value"] == pytest.approx(library, abs=1e-4)


def test_only_reruns_one_stage_of_an_existing_run(smoke_run, tmp_path):
    # A copy: the browser test, perhaps in another test process, reads the smoke run as it was.
    run_dir = tmp_path / "runs" / "smoke"
    shutil.copytree(smoke_run[0], run_dir, symlinks=True)
    result = sttune("run", "--name", "smoke", "--runs-dir", str(run_dir.parent), "--only", "02", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    # Re-running loss selection invalidates everything after it.
    assert manifest["stages"]["loss_selection"]["status"] == "completed"
    assert manifest["stages"]["training"]["status"] == "pending"
    refused = sttune("run", "--name", "smoke", "--runs-dir", str(run_dir.parent), "--only", "evaluation",
                     cwd=tmp_path)
    assert refused.returncode != 0 and "needs stage 'training'" in refused.stderr + refused.stdout


def test_failing_stage_names_stage_cell_error_and_notebook(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence1,sentence2,score\na,b,1\nc,d,very similar\n")
    # No short timeout: beside the two background pipeline runs, this run's kernel imports take minutes.
    result = sttune("run", "--preset", "smoke", "--name", "broken", "-p", f"data.source={bad}", cwd=tmp_path)
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert "stage 'data_prep' failed in cell" in out
    assert "data_prep.prepare(config)" in out  # the failing cell's source
    assert "bad.csv, row 3, column 'score': expected a number, got 'very similar'" in out
    assert "runs/broken/notebooks/01_data_prep.ipynb" in out
    manifest = json.loads((tmp_path / "runs" / "broken" / "manifest.json").read_text())
    assert manifest["stages"]["data_prep"]["status"] == "failed"
    assert not (tmp_path / "runs" / "broken" / "data" / "train.jsonl").exists()


def test_cli_refuses_existing_run_and_bad_names(tmp_path):
    (tmp_path / "runs" / "taken").mkdir(parents=True)
    (tmp_path / "runs" / "taken" / "config.yaml").write_text("seed: 1\n")
    result = sttune("run", "--preset", "smoke", "--name", "taken", cwd=tmp_path)
    assert result.returncode == 2 and "already exists" in result.stderr and "--overwrite" in result.stderr
    result = sttune("run", "--preset", "smoke", "--name", "../escape", cwd=tmp_path)
    assert result.returncode == 2 and "not allowed" in result.stderr
    result = sttune("run", "--preset", "smoke", "-p", "train.learnin_rate=1", cwd=tmp_path)
    assert result.returncode == 2 and "did you mean 'train.learning_rate'" in result.stderr


def test_help_explains_each_command():
    for args in (["--help"], ["run", "--help"], ["lab", "--help"]):
        result = sttune(*args, cwd=REPO)
        assert result.returncode == 0 and "usage: sttune" in result.stdout
    assert "--from STAGE" in sttune("run", "--help", cwd=REPO).stdout


def test_committed_notebooks_are_clean_and_parameterized():
    for notebook in NOTEBOOKS.values():
        nb = nbformat.read(REPO / "notebooks" / notebook, as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "sttune"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", [])
        assert all(not c.outputs and c.execution_count is None for c in code), f"{notebook} has outputs"


def test_every_stage_notebook_runs_for_every_shape(every_shape_runs):
    """All five notebooks through papermill on each other task shape, on a tiny model
    (tests/helpers/every_shape_runs.py, run in the background); pair_score on the real model is the smoke run."""
    from helpers.every_shape_runs import SHAPES

    for shape in SHAPES:
        run_dir = every_shape_runs / shape
        stages = json.loads((run_dir / "manifest.json").read_text())["stages"]
        assert [stages[s]["status"] for s in STAGES] == ["completed"] * len(STAGES), (shape, stages)
        check_data_prep_run(run_dir, shape)
        check_shape_recipe_run(run_dir, shape)
        check_evaluation_run(run_dir, shape)



def test_runs_and_compare_read_real_runs(every_shape_runs, tmp_path, capsys):
    """`sttune runs` and `sttune compare` on real runs of the smoke preset: the tiny model's runs of
    the other shapes, made for the test above (no run of their own; the smoke run is left out, as
    test_only_reruns_one_stage_of_an_existing_run changes it)."""
    from helpers.every_shape_runs import SHAPES

    from sttune_helpers.cli import main

    assert main(["runs", "--runs-dir", str(every_shape_runs), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(entry["name"] for entry in listed) == sorted(SHAPES)
    assert [entry["created"] for entry in listed] == sorted(entry["created"] for entry in listed)
    for entry in listed:
        run_dir = every_shape_runs / entry["name"]
        metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
        plan = json.loads((run_dir / "plan.json").read_text())
        stages = json.loads((run_dir / "manifest.json").read_text())["stages"].values()
        assert (entry["status"], entry["task"], entry["loss"], entry["metric"]) == (
            "completed", entry["name"], plan["loss"]["name"], metrics["primary_metric"])
        fine_tuned = metrics["models"]["fine_tuned"]["metrics"][metrics["primary_metric"]]
        assert (entry["value"], entry["ci95"]) == (fine_tuned["value"], fine_tuned["ci95"])
        walls = sum(stage["wall_seconds"] + stage.get("kernel_start_seconds", 0) for stage in stages)
        assert entry["seconds"] == pytest.approx(walls, abs=0.5)
        # each shape has its own source; every run trained the same 2 steps of the same tiny model
        assert "data.source" in entry["settings"] and not {"train.max_steps", "model.name"} & set(entry["settings"])
    assert main(["runs", "--runs-dir", str(every_shape_runs)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 1 + len(SHAPES) and all(" completed " in line for line in table[1:])

    plot = tmp_path / "compare.png"
    assert main(["compare", "pair_binary", "triplet", "--runs-dir", str(every_shape_runs), "--plot", str(plot),
                 "--json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and compared["plot"] == str(plot)
    binary_config = yaml.safe_load((every_shape_runs / "pair_binary" / "config.yaml").read_text())
    assert compared["settings"]["eval.final_alpha"] == {"pair_binary": binary_config["eval"]["final_alpha"],
                                                        "triplet": None}
    assert "train.max_steps" not in compared["settings"]
    rows = {(row["part"], row["model"], row["metric"]): row["runs"] for row in compared["metrics"]}
    binary = json.loads((every_shape_runs / "pair_binary" / "eval" / "metrics.json").read_text())
    assert rows[("test", "fine_tuned", "cosine_ap")] == {
        "pair_binary": binary["models"]["fine_tuned"]["metrics"]["cosine_ap"], "triplet": None}
    assert rows[("test", "fine_tuned", "cosine_accuracy")]["triplet"] is not None
    assert any(part.startswith("reference ") for part, _, _ in rows)
    assert set(compared["time_seconds"]["total"]) == {"pair_binary", "triplet"}

def check_data_prep_run(run_dir, shape):
    report = json.loads((run_dir / "data" / "report.json").read_text())
    assert report["shape"] == shape
    assert json.loads((run_dir / "manifest.json").read_text())["stages"]["data_prep"]["status"] == "completed"
    executed = nbformat.read(run_dir / "notebooks" / "01_data_prep.ipynb", as_version=4)
    assert f"shape: {shape}" in "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code"
                                        for o in c.outputs)
    train = [json.loads(line) for line in (run_dir / "data" / "train.jsonl").read_text().splitlines()]
    if shape == "pair_binary":
        added = report["augmentation"][0]["rows_added"]
        assert added > 0 and sum(bool(row.get("augmentation")) for row in train) == added
    if shape == "unlabeled":
        assert report["train_shape"] == "retrieval" and all(r["anchor"] == r["positive"] for r in train)
    if shape == "retrieval":
        assert (run_dir / "data" / "corpus.jsonl").is_file() and (run_dir / "data" / "qrels.jsonl").is_file()


def check_shape_recipe_run(run_dir, shape, kept=None):
    """A shape's measured recipe reaches config.yaml, plan.json, notebook 02 and training; shapes
    without one train as configured. ``kept``: the recipe's settings the run set itself (default:
    every_shape_runs' batch size of 8)."""
    from sttune_helpers import shapes

    plan = json.loads((run_dir / "plan.json").read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    regularisation = json.loads((run_dir / "training.json").read_text())["regularisation"]
    recipe = shapes.get(shape).recipe
    if recipe is None:
        assert "recipe" not in plan and config["train"]["general_anchor"] is None
        assert config["train"]["task_prompt"] is None and not regularisation.get("general_anchor")
        return
    if kept is None:
        kept = {k: v for k, v in {"train.batch_size": 8}.items() if k in recipe.settings}  # every_shape_runs' wins
    filled = {k: v for k, v in recipe.settings.items() if k not in kept}
    assert plan["recipe"]["filled"] == filled and plan["recipe"]["kept"] == kept
    assert {k: config[k.split(".")[0]][k.split(".")[1]] for k in recipe.settings} == {**filled, **kept}
    if "train.general_anchor" in recipe.settings:
        assert regularisation["general_anchor"] == recipe.settings["train.general_anchor"]
        assert regularisation["anchor_texts_per_step"] == recipe.settings["train.general_anchor_texts"]
        assert regularisation["anchor_every"] == recipe.settings["train.general_anchor_every"]
        assert regularisation["anchor_texts"] > 0 and regularisation["anchor_draws_by_length"]
    if "model.attention_dropout" in recipe.settings:  # the saved model trained with it
        saved = json.loads((run_dir / "model" / "config.json").read_text())
        assert saved["attention_probs_dropout_prob"] == recipe.settings["model.attention_dropout"]
    executed = nbformat.read(run_dir / "notebooks" / "02_loss_selection.ipynb", as_version=4)
    shown = "".join(str(o.get("data", {}).get("text/markdown", "")) for c in executed.cells if c.cell_type == "code"
                    for o in c.outputs)
    first, value = next(iter(filled.items()))
    assert f"The {shape} recipe: {first}={value!r}" in shown and "train.shape_recipe=false" in shown


def check_evaluation_run(run_dir, shape):
    from sttune_helpers import shapes
    from sttune_helpers.evaluation import validate_report

    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    validate_report(metrics)
    task_shape = shapes.get(shape)
    assert metrics["task"] == shape and metrics["primary_metric"] == task_shape.primary_metric
    for name in ("base", "fine_tuned"):
        assert set(metrics["models"][name]["metrics"]) == set(task_shape.metrics)
        primary = metrics["models"][name]["metrics"][task_shape.primary_metric]
        assert primary["ci95"][0] <= primary["value"] <= primary["ci95"][1], (shape, name, primary)
    pure = "before_selection" if (run_dir / "model_finetuned").is_dir() else "fine_tuned"
    assert {(c["a"], c["b"]) for c in metrics["comparisons"]} == {("fine_tuned", "base"), (pure, "base")}
    alphas = [0.0, 0.5, 1.0] if shape == "pair_binary" else [0.0, 1.0]
    assert [row["alpha"] for row in metrics["interpolation"]] == alphas
    tuned = metrics["models"][pure]["metrics"][metrics["primary_metric"]]["value"]
    assert metrics["interpolation"][-1]["task"] == tuned
    if shape == "unlabeled":  # no test labels: measured on the reference set, which is then the task
        assert metrics["test_set"].endswith("-report") and metrics["reference"] == {} and metrics["n_test"] == 40
    else:
        parts = metrics["reference"]["parts"].values()
        assert parts and all(p["n_test"] == 40 and set(p["models"]) == {"base", "fine_tuned", pure} for p in parts)
        errors = (run_dir / "eval" / "errors.csv").read_text().splitlines()
        assert len(errors) == metrics["n_test"] + 1 and "error_change" in errors[0]
        assert (run_dir / "eval" / "similarities.npz").is_file()
    if shape == "pair_binary":
        assert set(metrics["thresholds"]["fine_tuned"]) == {"f1", "accuracy"}
        assert metrics["final_model"]["alpha"] == 0.5 and (run_dir / "model_final" / "config.json").is_file()
    executed = nbformat.read(run_dir / "notebooks" / "04_evaluation.ipynb", as_version=4)
    printed = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                      + str(o.get("data", {}).get("text/html", ""))  # the doctor's table is a Styler: HTML only
                      for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "collapsed embeddings" in printed and "overfitting" in printed  # the doctor's table
    assert (run_dir / "viz" / "umap_base_vs_fine_tuned.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run_dir / "viz" / "projector" / "projector_config.pbtxt").is_file()
    assert (run_dir / "viz" / "similarity_distributions.png").is_file() == (shape != "unlabeled")
