"""The final model: train from an export, save, evaluate again, reproduce exactly."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from tests.tuner.fake_run import epochs, make_run
from tuner.cli import main
from tuner.errors import InputError
from tuner.export_file import export_run
from tuner.final import evaluate_file, load_model, train


@pytest.fixture(scope="module")
def export_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("final")
    run_dir = make_run(
        tmp,
        [
            ({"train.lr": 0.05, "train.momentum": 0.9}, epochs(0.5, 0.6, 0.7)),
            ({"train.lr": 0.2, "train.momentum": 0.5}, epochs(0.4)),
        ],
        epochs=4,
    )
    return export_run(run_dir)


def test_train_saves_weights_config_and_metrics_and_evaluate_reproduces_them(export_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.pt"
    metrics = train(export_path, out, device="cpu", write=lambda _: None)
    assert metrics["epochs"] == 4 and 0.0 <= metrics["test_acc"] <= 1.0
    payload = torch.load(out, weights_only=True)  # plain data: no pickled code
    assert payload["params"] == {"train.lr": 0.05, "train.momentum": 0.9}
    assert payload["config"]["train"]["lr"] == 0.05 and payload["metrics"] == metrics
    assert any(k.endswith("running_mean") for k in payload["state_dict"])  # BN statistics saved
    again = evaluate_file(out, device="cpu")
    assert again["test_acc"] == metrics["test_acc"] and again["test_loss"] == metrics["test_loss"]
    assert again["same_data"]
    other = evaluate_file(out, data={"flip_y": 0.5}, device="cpu")
    assert not other["same_data"]


def test_a_loaded_model_predicts_each_sample_independently_of_its_batch(export_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.pt"
    train(export_path, out, device="cpu", write=lambda _: None)
    model, _ = load_model(out)
    assert not model.training
    x = torch.randn(16, 8)
    alone = torch.cat([model(x[i : i + 1]) for i in range(16)])
    assert torch.allclose(model(x), alone, atol=1e-6)
    shuffled = model(torch.cat([x[:1], torch.randn(7, 8) * 10]))[:1]
    assert torch.allclose(shuffled, alone[:1], atol=1e-6)


def test_cli_train_and_evaluate(export_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.pt"
    assert main(["train", str(export_path), "-o", str(out), "--device", "cpu"]) == 0
    trained = capsys.readouterr().out
    acc = trained.split("test_acc ")[1].split(",")[0].split(";")[0]
    assert main(["evaluate", str(out), "--device", "cpu"]) == 0
    assert f"test_acc {acc}" in capsys.readouterr().out


def test_bad_inputs(export_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(export_path)]) == 2
    assert "the following arguments are required: -o" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "absent.yaml"), "-o", str(tmp_path / "m.pt")]) == 2
    assert not (tmp_path / "m.pt").exists()
    assert main(["train", str(export_path), "-o", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "absent.pt")]) == 2
    (tmp_path / "junk.pt").write_text("junk")
    with pytest.raises(InputError, match="not a tuner model file"):
        load_model(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a tuner model file"):
        load_model(tmp_path / "other.pt")


def test_diverging_final_training_is_a_clear_error(export_path: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(export_path.read_text())
    data["config"]["train"].update(lr=1e5, momentum=0.0)
    data["config"]["model"]["batch_norm"] = False
    for params in [data["params"]] + [t["params"] for t in data["top"][:1]]:  # one configuration throughout
        params.update(
            {k: data["config"]["train"][k.split(".")[1]] for k in params if k in ("train.lr", "train.momentum")}
        )
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match="training diverged"):
        train(bad, tmp_path / "m.pt", device="cpu", write=lambda _: None)
    assert not (tmp_path / "m.pt").exists()


@pytest.fixture(scope="module")
def model_path(export_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "model.pt"
    train(export_path, out, device="cpu", write=lambda _: None)
    return out


def _damaged(model_path: Path, tmp_path: Path, change: Any) -> Path:
    payload = torch.load(model_path, weights_only=True)
    change(payload)
    out = tmp_path / "damaged.pt"
    torch.save(payload, out)
    return out


def _first(state: dict[str, torch.Tensor], suffix: str) -> str:
    return next(k for k in state if k.endswith(suffix))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            lambda p: p["state_dict"].update(
                {_first(p["state_dict"], "weight"): p["state_dict"][_first(p["state_dict"], "weight")].to(torch.cfloat)}
            ),
            r"damaged.pt: state_dict\.\S+weight: dtype torch.complex64 must be a real floating dtype",
        ),
        (
            lambda p: p["state_dict"].update(
                {_first(p["state_dict"], "weight"): p["state_dict"][_first(p["state_dict"], "weight")].long()}
            ),
            r"damaged.pt: state_dict\.\S+weight: dtype torch.int64 must be a real floating dtype",
        ),
        (
            lambda p: p["state_dict"][_first(p["state_dict"], "running_var")].fill_(-1.0),
            r"damaged.pt: state_dict\.\S+running_var: -1.0 is negative; a BatchNorm running_var must be >= 0",
        ),
        (
            lambda p: p["metrics"].update(test_acc=float("nan")),
            r"damaged.pt: metrics.test_acc: nan must be a finite number",
        ),
        (
            lambda p: p["state_dict"][_first(p["state_dict"], "running_mean")].fill_(float("inf")),
            r"damaged.pt: state_dict\.\S+running_mean: holds NaN or infinite values",
        ),
    ],
    ids=["complex", "integer", "negative_bn_var", "nan_metric", "inf_bn_mean"],
)
def test_a_model_file_of_wrong_dtypes_or_values_is_refused_in_one_line(
    model_path: Path, tmp_path: Path, change: Any, match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _damaged(model_path, tmp_path, change)
    with pytest.raises(InputError, match=match):
        load_model(bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing of torch's reaches the console
        assert main(["evaluate", str(bad), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert re.search(match, err) and "\n" not in err


def test_data_whose_labels_the_model_has_no_output_for_is_bad_input(
    model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(
        InputError, match=r"model.pt: data: y_test\[\d+\]: [34] is not a class of the model's 3 outputs"
    ):
        evaluate_file(model_path, data={"n_classes": 5}, device="cpu")
    assert main(["evaluate", str(model_path), "--data", "n_classes=5", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "labels must be in [0, 3)" in err and "\n" not in err and "internal error" not in err
    assert evaluate_file(model_path, data={"n_classes": 2}, device="cpu")["n"] == 60  # fewer classes: fine


def test_train_never_writes_its_model_over_the_export_it_reads(
    export_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import tuner

    before = export_path.read_bytes()
    message = f"-o: {export_path}: is the file this command reads; write elsewhere"
    for call in (
        lambda: train(export_path, export_path, device="cpu", write=lambda _: None),
        lambda: tuner.train(export_path, export_path, device="cpu", write=lambda _: None),
    ):
        with pytest.raises(InputError) as e:
            call()
        assert e.value.problems == [message]
    assert main(["train", str(export_path), "-o", str(export_path)]) == 2  # the command line says the same
    assert capsys.readouterr().err.strip() == message
    assert export_path.read_bytes() == before


def _many_layers(p: dict[str, Any]) -> None:
    p["config"]["model"]["hidden"] = [1] * 100_000


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_many_layers, "config: model.hidden: <list of 100000 items> must be a non-empty list of integers in"),
        (
            lambda p: p["config"]["model"].update(hidden=[1_000_000, 1_000_000]),
            "config: model.hidden: [1000000, 1000000] must hold at most 200,000,000 weights between its layers",
        ),
        (lambda p: p["config"]["model"].update(bn_momentum=5.0), "config: model.bn_momentum: 5.0 must lie in (0, 1]"),
        (lambda p: p["config"]["model"].update(depth=3), "config: model.depth: unknown key"),
        (
            lambda p: p["config"]["model"].update(hidden=[1] * 99),
            "the weights do not fit the network the file describes (ValueError: config.model implies 596 tensors, "
            "the file holds",
        ),
    ],
    ids=["100000_layers", "too_many_weights", "bn_momentum", "unknown_key", "tensor_count"],
)
def test_a_model_section_the_sweep_rules_refuse_is_refused_before_any_network_is_built(
    model_path: Path, tmp_path: Path, change: Any, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small hostile file must cost milliseconds: its ``config.model`` is checked by the
    sweep's own rules, and its tensors counted, before a skeleton network is built."""
    import time

    import tuner.model_file

    built: list[Any] = []
    monkeypatch.setattr(tuner.model_file, "build_model", lambda *a, **k: built.append(a))
    bad = _damaged(model_path, tmp_path, change)
    started = time.perf_counter()
    with pytest.raises(InputError) as e:
        load_model(bad)
    assert time.perf_counter() - started < 5 and not built
    (line,) = e.value.problems
    assert line.startswith(f"{bad}: {problem}") and "\n" not in line


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("batch_norm", [True, False])
def test_the_tensor_count_a_model_section_implies_is_the_networks(name: str, batch_norm: bool) -> None:
    from tuner.model_file import _same_count
    from tuner.models import build_model

    cfg = {"name": name, "hidden": [4, 3, 2], "batch_norm": batch_norm, "bn_momentum": 0.1}
    with torch.device("meta"):
        state = build_model(cfg, (1, 16), 3).state_dict()
    _same_count(cfg, state)
    with pytest.raises(ValueError, match="tensors"):
        _same_count({**cfg, "hidden": [4]}, state)


def test_a_torch_device_is_a_device(model_path: Path) -> None:
    from tuner.model_file import device_of

    model, _ = load_model(model_path, torch.device("cpu"))
    assert next(model.parameters()).device.type == "cpu"
    assert device_of(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(InputError, match="--device: 'meta' is not one of cpu, cuda"):
        device_of(torch.device("meta"))
    with pytest.raises(InputError, match="--device: 3 is not one of cpu, cuda"):
        device_of(3)  # type: ignore[arg-type]


def test_train_never_writes_its_model_over_the_data_file_it_reads(export_path: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.npz"
    data.write_bytes(b"the user's only copy")
    with pytest.raises(InputError) as e:
        train(export_path, data, data={"name": "npz", "path": str(data)}, device="cpu", write=lambda _: None)
    assert e.value.problems == [f"-o: {data}: is the file this command reads; write elsewhere"]
    assert data.read_bytes() == b"the user's only copy"
