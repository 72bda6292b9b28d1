"""metrics.jsonl after an interrupted and resumed run logs every step once.

Each run is killed (a KeyboardInterrupt raised from the checkpointer's save
hook) after it logged steps past its last finished checkpoint; the resumed
run restarts from that checkpoint, so without truncation those steps were
logged twice. The resumed log must equal the killed run's (the uninterrupted
trajectory) record for record, the losses bitwise, with each training and
evaluation record exactly once. A line torn by a kill
mid-write is dropped, and `JsonlWriter.truncate` is checked against a
hand-filtered file.
"""

import functools
import json
import os

import jax
import pytest

from configs import classifier
from configs.cli import parse_args
from jaxcxai import checkpoint, parallel, training
from jaxcxai.metric_writers import JsonlWriter, read_jsonl
from tests.paths import ROOT
from tests.test_training import batch_for, init_fn, make_loss
from tests.tiny_models import TinyConvNet
from train import classifier as train_classifier
from train import hashing as train_hashing

FAST = {"xla_backend_optimization_level": 0}


def _kill_at_save(monkeypatch, when):
    """Makes `Checkpointer.save` raise (after earlier saves are on disk) when
    `when(step, call_number)` is true."""
    original, calls = checkpoint.Checkpointer.save, []

    def save(self, state, force=False):
        calls.append(int(jax.device_get(state.step)))
        if when(calls[-1], len(calls)):
            self.wait()
            raise KeyboardInterrupt("simulated kill")
        return original(self, state, force)

    monkeypatch.setattr(checkpoint.Checkpointer, "save", save)
    return calls


def _classifier_config():
    c = classifier.get_config("small_cnn_tiny")
    c.data.image_size, c.data.num_train, c.data.num_test = 16, 32, 8
    c.train.batch_size, c.train.steps = 8, 6
    c.train.log_every, c.train.checkpoint_every = 1, 4
    return c


def test_resumed_classifier_logs_each_step_once(tmp_path, monkeypatch):
    calls = _kill_at_save(monkeypatch, lambda step, n: step == 6)
    with pytest.raises(KeyboardInterrupt):
        train_classifier.train_and_evaluate(_classifier_config(), str(tmp_path), False)
    assert calls == [4, 6]  # killed at the final save: step 4 is on disk
    path = tmp_path / "metrics.jsonl"
    # The killed run logged steps 1..6 of the uninterrupted trajectory.
    straight = read_jsonl(str(path))
    assert [r["step"] for r in straight] == [1, 2, 3, 4, 5, 6]
    with open(path, "a") as f:
        f.write('{"step": 7, "lo')  # a write cut by the kill
    monkeypatch.undo()
    train_classifier.train_and_evaluate(_classifier_config(), str(tmp_path), False)
    resumed = read_jsonl(str(path))
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    assert resumed[:4] == straight[:4]  # kept as they were
    for r, s in zip(resumed[4:], straight[4:], strict=True):  # logged again
        r.pop("steps_per_s"), s.pop("steps_per_s")
        assert r == s  # the same losses, bitwise


def test_resumed_hashing_logs_each_epoch_once(tmp_path, monkeypatch):
    argv = ["--config", os.path.join(ROOT, "configs", "duch.py:tiny"),
            "--workdir", str(tmp_path), "--config.train.epochs=3",
            "--config.train.checkpoint_every_epochs=2",
            "--config.eval.eval_every_epochs=1",
            "--config.quirks.eval_only_final=False",
            "--config.mesh.num_devices=1"]  # fmt: skip
    cfg = parse_args(argv).config
    _kill_at_save(monkeypatch, lambda step, n: n == 2)  # the save after epoch 2
    with pytest.raises(KeyboardInterrupt):
        train_hashing.train_and_evaluate(cfg, str(tmp_path), compiler_options=FAST)
    path = tmp_path / "metrics.jsonl"
    before = read_jsonl(str(path))
    assert [r["epoch"] for r in before if "epoch" in r] == [0, 1, 2]
    monkeypatch.undo()
    train_hashing.train_and_evaluate(cfg, str(tmp_path), compiler_options=FAST)
    records = read_jsonl(str(path))
    assert [r["epoch"] for r in records if "epoch" in r] == [0, 1, 2]
    assert [r["eval/epoch"] for r in records if "eval/epoch" in r] == [0, 1, 2]
    steps = [r["step"] for r in records if "epoch" in r]
    assert steps == sorted(set(steps))
    # Epochs before the checkpoint kept their records; the redone ones agree
    # with the killed run's (same state, same batches).
    assert records[:4] == before[:4]
    for old, new in zip(before[4:], records[4:], strict=True):
        old.pop("epoch_s", None), new.pop("epoch_s", None)
        assert old == new


def _loop(workdir, eval_fn):
    """4 steps of a tiny net on one device: log every step, save every 2."""
    mesh = parallel.make_mesh(devices=jax.devices()[:1])
    init = functools.partial(init_fn, TinyConvNet())
    repl = parallel.replicated_sharding(mesh)
    ckpt = checkpoint.Checkpointer(str(workdir / "ckpt"), save_every=2, keep=2)
    state = ckpt.restore(training.abstract_state(init, jax.random.key(0), repl))
    if state is None:
        state = training.init_state_sharded(init, jax.random.key(0), repl)
    try:
        training.train_loop(
            state, training.make_train_step(make_loss(TinyConvNet())),
            lambda s: parallel.shard_batch(batch_for(s), mesh), jax.random.key(1),
            num_steps=4, writer=JsonlWriter(str(workdir / "metrics.jsonl"), False),
            log_every=1, checkpointer=ckpt, eval_fn=eval_fn, eval_every=2,
            progress=False,
        )  # fmt: skip
    finally:
        ckpt.close()


def test_evaluation_records_are_written_before_the_checkpoint(tmp_path):
    """Killed inside the step-4 evaluation: the step-4 checkpoint must not
    exist yet, or the resumed run (starting at 4) would never log it."""
    calls = []

    def killed_at_4(state):
        calls.append(int(state.step))
        if calls == [2, 4]:
            raise KeyboardInterrupt("simulated kill")
        return {"acc": 0.5}

    with pytest.raises(KeyboardInterrupt):
        _loop(tmp_path, killed_at_4)
    _loop(tmp_path, killed_at_4)
    records = read_jsonl(str(tmp_path / "metrics.jsonl"))
    assert calls == [2, 4, 4]
    assert [(r["step"], "eval/acc" in r) for r in records] == [
        (1, False), (2, False), (2, True), (3, False), (4, False), (4, True)
    ]  # fmt: skip


def test_truncate_keeps_records_up_to_the_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [{"step": s, "loss": 0.5 * s} for s in (2, 4, 4, 6, 8)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"step": 9')
    writer = JsonlWriter(str(path), also_log=False)
    assert writer.truncate(4) == 2  # steps 6 and 8; the torn line is no record
    assert read_jsonl(str(path)) == [r for r in records if r["step"] <= 4]
    assert path.read_text().endswith("\n")
    assert writer.truncate(100) == 0
    writer.write_scalars(5, {"loss": 1.0})
    assert [r["step"] for r in read_jsonl(str(path))] == [2, 4, 4, 5]
    assert sorted(os.listdir(tmp_path)) == ["metrics.jsonl"]
