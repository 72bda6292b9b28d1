"""Probe study resume identity (see `tests/test_fingerprints.py`).

A probe workdir records the backbone and the fit's settings first; a rerun
with another backbone or a changed setting is refused naming the field, the
evaluation check refuses them too (its own settings stay free), an unchanged
rerun resumes and removes a killed write's temporary file, and a workdir
written before fingerprints is refused.
"""

import dataclasses
import json
import os

import pytest

from jaxcxai.checks import FingerprintError
from jaxcxai.concepts.probes import run as probe_run
from jaxcxai.concepts.probes import study as probe_study
from tests.test_fingerprints import tiny_backbones


@pytest.fixture(scope="module")
def nets():
    return tiny_backbones()


def _probe_settings(**net2vec):
    return probe_study.ProbeStudy(
        seed=0, backbone="unused", layers=("conv2",), concepts=("car", "tree"),
        batch_size=8, data=probe_study.ProbeData(num_train=8, num_test=8),
        net2vec=probe_study.Net2VecSettings(epochs=1, **net2vec),
    )  # fmt: skip


def test_probe_workdir_refuses_changed_settings(nets, tmp_path, monkeypatch):
    net_a, net_b = nets

    def killed(*args):  # a kill after the record, before any data
        raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(probe_study, "build_data", killed)
    with pytest.raises(KeyboardInterrupt):
        probe_run.fit(_probe_settings(), str(tmp_path), net_a, progress=False)
    record = json.loads((tmp_path / probe_study.FINGERPRINT).read_text())
    assert record["settings"]["net2vec"]["lr"] == 0.03
    for changed, st, net in (("settings.net2vec.lr", _probe_settings(lr=0.1), net_a),
                             ("backbone.weights", _probe_settings(), net_b)):  # fmt: skip
        with pytest.raises(FingerprintError) as err:
            probe_run.fit(st, str(tmp_path), net, progress=False)
        assert err.value.changed == [changed]
        assert f"delete {tmp_path}" in str(err.value)
    # Evaluation checks the workdir the same way; its own settings are free.
    probe_study.check_workdir(_probe_settings(), str(tmp_path), net_a)
    st = _probe_settings()
    st = dataclasses.replace(st, tcav=dataclasses.replace(st.tcav, significance=0.01))
    probe_study.check_workdir(st, str(tmp_path), net_a)
    with pytest.raises(FingerprintError, match="backbone.weights changed"):
        probe_study.check_workdir(_probe_settings(), str(tmp_path), net_b)
    # Unchanged: the run resumes (to the data again), removing a killed
    # write's temporary file on the way.
    (tmp_path / "net2vec.npz.tmp-99999999").write_bytes(b"half")
    with pytest.raises(KeyboardInterrupt):
        probe_run.fit(_probe_settings(), str(tmp_path), net_a, progress=False)
    assert sorted(os.listdir(tmp_path)) == [probe_study.FINGERPRINT]
    # A workdir written before fingerprints is refused, not trusted.
    old = tmp_path / "old"
    old.mkdir()
    (old / probe_study.META).write_text("{}")
    with pytest.raises(FingerprintError, match="carries no fingerprint"):
        probe_run.fit(_probe_settings(), str(old), net_a, progress=False)
