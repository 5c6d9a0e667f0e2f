"""Run folders: creation, refusal, resume/force, concurrent creation, atomic adapter save and round trip."""

from __future__ import annotations

import json
import multiprocessing
import os
import time

import pytest
import torch

from rlsd_cli.errors import BadInputError
from rlsd_cli.model import LoraSettings, load_model, resolve_model, weights_hash
from rlsd_cli.runs import RUN_LOCK, Run, describe_run, discard_unstarted, list_runs


def _base_record(model_dir):
    return {"base_model": {"spec": str(model_dir), "weights_sha256": weights_hash(model_dir)}, "config": {"lr": 1e-4}}


def test_create_writes_record_with_versions_and_command(runs_root, tiny_model_dir):
    run = Run.create("sft", name="first", root=runs_root, record=_base_record(tiny_model_dir))
    record = json.loads((run.path / "run.json").read_text())
    assert record["verb"] == "sft" and record["name"] == "first"
    assert record["versions"]["torch"] and record["versions"]["transformers"]
    assert isinstance(record["command"], list)
    assert record["base_model"]["weights_sha256"] == weights_hash(tiny_model_dir)
    assert (run.path / "checkpoints").is_dir()


def test_existing_run_is_refused_and_untouched(runs_root, tiny_model_dir):
    run = Run.create("sft", name="taken", root=runs_root, record=_base_record(tiny_model_dir))
    (run.path / "marker").write_text("keep me")
    with pytest.raises(BadInputError, match="--resume") as info:
        Run.create("sft", name="taken", root=runs_root, record=_base_record(tiny_model_dir))
    assert "\n" not in str(info.value)
    assert (run.path / "marker").read_text() == "keep me"


def test_force_moves_the_old_run_to_trash_instead_of_deleting(runs_root, tiny_model_dir):
    run = Run.create("sft", name="again", root=runs_root, record=_base_record(tiny_model_dir))
    (run.path / "marker").write_text("old")
    Run.create("sft", name="again", root=runs_root, force=True, record=_base_record(tiny_model_dir))
    assert not (runs_root / "again" / "marker").exists()
    trashed = list((runs_root / ".trash").iterdir())
    assert len(trashed) == 1 and (trashed[0] / "marker").read_text() == "old"


def test_resume_reuses_and_requires_an_existing_run(runs_root, tiny_model_dir):
    with pytest.raises(BadInputError, match="no such run"):
        Run.create("sft", name="ghost", root=runs_root, resume=True)
    run = Run.create("sft", name="live", root=runs_root, record=_base_record(tiny_model_dir))
    assert Run.create("sft", name="live", root=runs_root, resume=True).path == run.path


def test_resume_refuses_a_finished_run_another_base_or_changed_settings(runs_root, tiny_model_dir):
    record = _base_record(tiny_model_dir)
    Run.create("sft", name="r", root=runs_root, record=record)
    other_base = {**record, "base_model": {"spec": "other", "weights_sha256": "f" * 64}}
    with pytest.raises(BadInputError, match="trained on .* not on the --model given"):
        Run.create("sft", name="r", root=runs_root, resume=True, record=other_base)
    with pytest.raises(BadInputError, match=r"started with --lr 0.0001, not 0.001"):
        Run.create("sft", name="r", root=runs_root, resume=True, record={**record, "config": {"lr": 1e-3}})
    # Where and how often it reports may change.
    Run.create("sft", name="r", root=runs_root, resume=True, record={**record, "config": {"lr": 1e-4, "eval_limit": 5}})
    # A run recorded with its documents' path as typed resumes from the same folder, now that paths are absolute;
    # other documents are refused.
    typed = {**record, "config": {"lr": 1e-4, "docs": "docs"}}
    Run.create("sft", name="typed", root=runs_root, record=typed)
    Run.create("sft", name="typed", root=runs_root, resume=True, record={**typed, "config": {"lr": 1e-4, "docs": os.path.abspath("docs")}})
    with pytest.raises(BadInputError, match="started with --docs 'docs'"):
        Run.create("sft", name="typed", root=runs_root, resume=True, record={**typed, "config": {"lr": 1e-4, "docs": "/elsewhere/docs"}})
    (runs_root / "r" / "summary.json").write_text("{}")
    with pytest.raises(BadInputError, match="finished"):
        Run.create("sft", name="r", root=runs_root, resume=True, record=record)


def _try_resume(root, results):
    try:
        Run.create("sft", name="held", root=root, resume=True)
        results.put("resumed")
    except BadInputError as exc:
        results.put(f"refused: {exc}")


def test_a_run_in_use_by_another_process_is_refused_until_that_process_ends(runs_root, tiny_model_dir):
    ctx = multiprocessing.get_context("fork")
    holder_ready, release = ctx.Event(), ctx.Event()

    def hold():
        Run.create("sft", name="held", root=runs_root, record=_base_record(tiny_model_dir))
        holder_ready.set()
        release.wait(30)

    holder = ctx.Process(target=hold)
    holder.start()
    assert holder_ready.wait(30)
    results = ctx.Queue()
    for _ in range(2):  # while held, then after the holder has ended (killed: the kernel drops its lock)
        attempt = ctx.Process(target=_try_resume, args=(runs_root, results))
        attempt.start()
        attempt.join(30)
        outcome = results.get(timeout=5)
        if holder.is_alive():
            assert outcome.startswith("refused:") and f"pid {holder.pid}" in outcome, outcome
            holder.kill()
            holder.join(30)
        else:
            assert outcome == "resumed"
    with pytest.raises(BadInputError, match="in use"):  # --force must not move a run that is being trained
        ctx2 = ctx.Process(target=lambda: (Run.create("sft", name="held", root=runs_root, resume=True), release.wait(30)))
        ctx2.start()
        time.sleep(1.0)
        try:
            Run.create("sft", name="held", root=runs_root, force=True, record=_base_record(tiny_model_dir))
        finally:
            ctx2.kill()
            ctx2.join(30)
    assert (runs_root / "held" / "run.json").is_file()


def test_a_run_that_fails_before_training_is_removed_one_that_trained_is_kept(runs_root):
    fresh = Run.create("sft", name="fresh", root=runs_root, record={"base_model": {"spec": "x"}})
    trained = Run.create("sft", name="trained", root=runs_root, record={"base_model": {"spec": "x"}})
    trained.mark_started()
    removed = discard_unstarted()
    assert fresh.path in removed and trained.path not in removed
    assert not fresh.path.exists() and (trained.path / "run.json").is_file()
    Run.create("sft", name="fresh", root=runs_root, record={"base_model": {"spec": "x"}})  # the name is free again
    discard_unstarted()


@pytest.mark.parametrize("name", ["a/b", ".hidden", ""])
def test_bad_run_names(runs_root, name):
    with pytest.raises(BadInputError, match="one folder name"):
        Run.create("sft", name=name, root=runs_root)


def test_unwritable_runs_root_is_bad_input(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # fails for root too, unlike a chmod
    with pytest.raises(BadInputError, match="cannot create the runs folder"):
        Run.create("sft", name="x", root=blocker / "runs")


def _race(root, barrier, results):
    barrier.wait()
    try:
        Run.create("sft", name="contested", root=root, record={"base_model": {"spec": "x"}})
        results.put("won")
    except BadInputError as exc:
        results.put(f"lost: {exc}")


def test_two_processes_asking_for_the_same_name_one_wins_cleanly(runs_root):
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(runs_root, barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes[1] == "won" and outcomes[0].startswith("lost:")
    assert json.loads((runs_root / "contested" / "run.json").read_text())["name"] == "contested"


def test_metrics_survive_a_torn_last_line(runs_root):
    run = Run.create("sft", name="m", root=runs_root, record={"base_model": {"spec": "x"}})
    run.log_metrics(1, loss=2.0)
    run.log_metrics(2, loss=1.5)
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "lo')  # what a kill -9 mid-write could leave
    assert [m["step"] for m in run.metrics()] == [1, 2]
    run.log_metrics(3, loss=1.0)  # the resumed run's first row is not glued to the fragment
    assert [m["step"] for m in run.metrics()] == [1, 2, 3]


def test_adapter_round_trip_gives_identical_logits(runs_root, tiny_model_dir):
    loaded = load_model(str(tiny_model_dir), lora=LoraSettings(r=4, dropout=0.0), trainable=True)
    torch.manual_seed(3)
    for name, param in loaded.model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.5)
    ids = torch.randint(0, 2000, (2, 12), generator=torch.Generator().manual_seed(4))
    loaded.model.eval()
    with torch.no_grad():
        expected = loaded.model(input_ids=ids).logits
    run = Run.create("sft", name="rt", root=runs_root, record={"base_model": loaded.record()})
    run.save_adapter(loaded.model)
    run.write_summary({"steps": 0})
    assert sorted(p.name for p in (run.path / "adapter").iterdir() if p.suffix == ".safetensors") == [
        "adapter_model.safetensors"
    ]
    assert not [p for p in run.path.iterdir() if p.name.startswith(".") and p.name != RUN_LOCK]  # no temp folders left

    reloaded = load_model(str(run.path))
    assert reloaded.resolved.kind == "run" and reloaded.resolved.adapter_path == run.path / "adapter"
    with torch.no_grad():
        got = reloaded.model(input_ids=ids).logits
        with reloaded.model.disable_adapter():
            without = reloaded.model(input_ids=ids).logits
    assert torch.equal(expected, got)
    assert not torch.allclose(got, without)  # the adapter really changes the model

    info = describe_run(run.path)
    assert info["status"] == "finished" and info["base_model"] == str(tiny_model_dir)
    assert [r["name"] for r in list_runs(runs_root)] == ["rt"]


def test_run_whose_base_weights_changed_is_refused(runs_root, tiny_model_dir, tmp_path):
    import shutil

    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    loaded = load_model(str(base), lora=LoraSettings(r=4), trainable=True)
    run = Run.create("sft", name="hash", root=runs_root, record={"base_model": loaded.record()})
    run.save_adapter(loaded.model)
    with pytest.raises(BadInputError, match="did not finish"):  # no summary.json yet: stopped after training
        resolve_model(str(run.path))
    run.write_summary({})
    assert resolve_model(str(run.path)).kind == "run"
    with torch.no_grad():
        loaded.model.get_base_model().model.norm.weight.add_(1.0)
    loaded.model.get_base_model().save_pretrained(base, safe_serialization=True)
    with pytest.raises(BadInputError, match="trained on base weights"):
        resolve_model(str(run.path))


def test_run_without_adapter_is_bad_input(runs_root, tiny_model_dir):
    run = Run.create("sft", name="unfinished", root=runs_root, record=_base_record(tiny_model_dir))
    with pytest.raises(BadInputError, match="no finished adapter"):
        resolve_model(str(run.path))


def test_corrupt_run_record_names_the_file(runs_root, tiny_model_dir):
    run = Run.create("sft", name="corrupt", root=runs_root, record=_base_record(tiny_model_dir))
    (run.path / "run.json").write_text("{not json")
    with pytest.raises(BadInputError, match="run.json"):
        resolve_model(str(run.path))


def test_runs_plot_draws_each_run_in_one_png_and_never_overwrites(runs_root, tiny_model_dir, tmp_path):
    from rlsd_cli.runs import plot_runs

    for name, slope in (("rlsd", 0.1), ("grpo", 0.05)):
        run = Run.create("reason", name=name, root=runs_root, record=_base_record(tiny_model_dir))
        for step in range(1, 4):
            run.log_metrics(step, reward=slope * step)
    out = tmp_path / "curves.png"
    result = plot_runs([runs_root / "rlsd", runs_root / "grpo"], ["reward"], out)
    assert result["points"] == {"rlsd": 3, "grpo": 3}
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = out.read_bytes()
    with pytest.raises(BadInputError, match="already exists"):
        plot_runs([runs_root / "rlsd"], ["reward"], out)
    assert out.read_bytes() == before
    with pytest.raises(BadInputError, match="no run has points"):
        plot_runs([runs_root / "rlsd"], ["eval/math/accuracy"], tmp_path / "other.png")


def test_runs_plot_skips_rows_it_cannot_draw_and_tells_two_runs_of_one_name_apart(runs_root, tiny_model_dir, tmp_path):
    """Found by a hostile-input sweep: a loss of 401 digits raised OverflowError, a row without "step" KeyError, and
    runs/p and other/p were drawn as one line under the label `p`."""
    from rlsd_cli.runs import plot_runs

    for root in (runs_root, tmp_path / "other"):
        run = Run.create("sft", name="p", root=root, record=_base_record(tiny_model_dir))
        run.log_metrics(1, loss=2.0)
        run.log_metrics(2, loss=1.0)
    with open(runs_root / "p" / "metrics.jsonl", "a") as metrics:
        metrics.write('{"step": 3, "loss": 1' + "0" * 400 + '}\n{"loss": 3}\n{"step": 4, "loss": NaN}\n')
    assert [row["step"] for row in Run(runs_root / "p").metrics()] == [1, 2, 3, 4]
    result = plot_runs([runs_root / "p", tmp_path / "other" / "p"], ["loss"], tmp_path / "p.png")
    assert result["points"] == {"runs/p": 2, "other/p": 2}
    assert describe_run(runs_root / "p")["steps"] == 4
