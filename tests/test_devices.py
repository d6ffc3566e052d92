"""Local GPU selection with more jobs than GPUs: a job waits for a free device instead of failing.
The device list is faked (two GPUs), so this runs without a GPU."""

from __future__ import annotations

import fcntl
import threading

import pytest

from deltalora import devices

GUARD_S = 60  # generous guard: the test waits on events, never on wall-clock limits


@pytest.fixture
def two_fake_gpus(monkeypatch, tmp_path):
    monkeypatch.setattr(devices, "_gpu_count", lambda: 2)
    monkeypatch.setenv("DELTALORA_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(devices, "_held", [])
    yield tmp_path
    for f in devices._held:
        f.close()


def _hold(path):
    f = open(path, "w")  # noqa: SIM115
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return f


def test_takes_the_first_free_gpu(two_fake_gpus):
    held = _hold(two_fake_gpus / "gpu0.lock")
    try:
        assert devices.select_device("auto").startswith("gpu 1")
        assert devices.os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    finally:
        held.close()


def test_waits_for_a_free_gpu_when_all_are_locked(two_fake_gpus):
    held = [_hold(two_fake_gpus / "gpu0.lock"), _hold(two_fake_gpus / "gpu1.lock")]
    waiting = threading.Event()
    result: dict = {}

    def job():
        try:
            result["device"] = devices.select_device("auto", poll_s=0.05, on_wait=lambda s: waiting.set())
        except Exception as e:  # noqa: BLE001 - reported by the assertions below
            result["error"] = e

    t = threading.Thread(target=job, daemon=True)
    t.start()
    assert waiting.wait(GUARD_S), "select_device neither waited nor returned"
    assert t.is_alive() and not result, f"it returned while every GPU was locked: {result}"
    held[1].close()  # a job on GPU 1 ends
    t.join(GUARD_S)
    assert not t.is_alive()
    assert "error" not in result, result
    assert result["device"].startswith("gpu 1")
    assert devices.os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    held[0].close()


def test_gives_up_after_the_configured_wait(two_fake_gpus, monkeypatch):
    monkeypatch.setenv("DELTALORA_GPU_WAIT_S", "0.1")
    held = [_hold(two_fake_gpus / "gpu0.lock"), _hold(two_fake_gpus / "gpu1.lock")]
    try:
        with pytest.raises(RuntimeError, match="DELTALORA_GPU_WAIT_S"):
            devices.select_device("auto", poll_s=0.05)
    finally:
        for f in held:
            f.close()


def test_memory_bench_refuses_cuda_without_a_gpu_by_name(monkeypatch, capsys):
    """Regression: the paper profile's memory.device: cuda on a machine without CUDA failed deep inside
    torch (AttributeError: torch._C has no _cuda_resetPeakMemoryStats); now a clear error names the field."""
    import torch

    from deltalora.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc = main(
        ["bench", "memory", "--models", "tiny", "--device", "cuda", "--rounds", "1", "--out", "unused.csv"]
    )
    err = capsys.readouterr().err
    assert rc != 0
    assert "memory.device" in err and "no CUDA device" in err and "allowed here: cpu" in err
