"""Memory at a batch size: hand-computed small graphs, what autograd keeps measured with saved-tensor hooks,
and the whole training step against the allocator (torch's CPU allocator through its profiler; CUDA's
``max_memory_allocated`` where a GPU exists).

Tolerances, stated once:
- activations kept for the backward pass: within 1% + 64 bytes per sample of what autograd saves
  (the bytes: the loss's target and scalars);
- a training step's peak and an inference pass's peak: within 25% of the allocator's peak, from
  nothing allocated (the model, the optimizer state and the batch included). The estimate leaves out
  the CPU convolution's im2col buffers (below) and counts gradients as if all were alive with every
  kept activation (above); measured here from 0.84x to 1.18x on the zoo's small specs.
"""
import json
from pathlib import Path

import pytest

import cnnspec
from cnnspec.graph.memory import FLOAT, estimate, kept_for_backward, peak_live, weight_numel

ROOT = Path(__file__).resolve().parent.parent


def graph_of(layers, input_shape):
    return cnnspec.loads(json.dumps({"cnnspec": 1, "name": "t", "input": list(input_shape), "layers": layers})).graph


CHAIN = [{"conv2d": {"filters": 4, "kernel": 3, "padding": 1}, "name": "c"}, {"relu": None, "name": "r"},
         {"maxpool2d": 2, "name": "p"}, {"flatten": None, "name": "f"}, {"dense": 3, "name": "d"}]


def test_chain_by_hand():
    g = graph_of(CHAIN, [2, 8, 8])
    x, c, p = 2 * 64, 4 * 64, 4 * 16
    # conv keeps its input, relu its output (which max pooling reads too), max pooling its int64 indices,
    # dense its input (the flatten is a view of the pool's output), the loss a log-softmax of the 3 outputs
    kept = kept_for_backward(g)
    assert (kept.floats, kept.extra, kept.fixed) == (x + c + p + 3, 8 * p, 0)
    # live at once, at most: the input and the conv's output, then the conv's and the relu's outputs
    assert peak_live(g) == c + c
    assert weight_numel(g) == 4 * 2 * 9 + 4 + 3 * 64 + 3
    m = estimate(g, 5)
    assert m.inference.bytes == FLOAT * (weight_numel(g) + 5 * 2 * c)
    parts = {p.name: p.bytes for p in m.training.parts}
    assert parts["gradients"] == FLOAT * g.params and parts["optimizer_state"] == 2 * FLOAT * g.params
    assert parts["activations_kept"] == 5 * (FLOAT * (x + c + p + 3) + 8 * p)
    assert m.training.bytes == parts["weights"] + 3 * FLOAT * g.params + max(
        parts["activations_kept"] + parts["backward_workspace"], parts["step_workspace"])


def test_nothing_is_kept_before_the_first_layer_with_weights_and_batchnorm_keeps_its_statistics():
    g = graph_of([{"sigmoid": None, "name": "s"}, {"batchnorm": None, "name": "b"}, {"tanh": None, "name": "t"}],
                 [3, 4, 4])
    kept = kept_for_backward(g)
    # sigmoid: nothing (no gradient yet); batchnorm: its input and 2 x 3 statistics; tanh: its output; loss: none
    # (a map is not a classifier's output, but the loss is counted where the output is tracked)
    assert (kept.floats, kept.fixed) == (48 + 48 + 48, FLOAT * 6)


def test_check_batch_json_and_table(tmp_path, capsys):
    from cnnspec.cli import main

    spec = tmp_path / "t.yaml"
    spec.write_text(json.dumps({"cnnspec": 1, "name": "t", "input": [2, 8, 8], "layers": CHAIN}))
    assert main(["check", str(spec), "--json", "--batch", "5"]) == 0
    doc = json.loads(capsys.readouterr().out)["memory"]
    assert doc["batch"] == 5 and doc["optimizer"] == "adam"
    assert doc["training"]["bytes"] == estimate(graph_of(CHAIN, [2, 8, 8]), 5).training.bytes
    assert all(isinstance(part["assumption"], str) and part["assumption"]
               for mode in ("inference", "training") for key, part in doc[mode].items() if isinstance(part, dict))
    assert main(["check", str(spec), "--batch", "5"]) == 0
    out = capsys.readouterr().out
    assert "Memory at batch 5, float32:" in out and "Adam: 2 copies" in out
    assert main(["check", str(spec), "--batch", "0"]) == 2
    assert "must be a whole number" in capsys.readouterr().err


# ---------------------------------------------------------------- measured with torch

try:
    import torch
except ImportError:  # the framework-free tests above still run
    torch = None

from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from strategies import spec_dicts  # noqa: E402

needs_torch = [pytest.mark.torch, pytest.mark.xdist_group("torch"),
               pytest.mark.skipif(torch is None, reason="needs torch: pip install 'cnnspec[torch]'")]


def with_torch(test):
    for mark in needs_torch:
        test = mark(test)
    return test
SMALL = ["digits", "lenet-5", "keras-mnist-cnn", "pytorch-cifar-cnn", "numpy-mnist-cnn"]


def saved_bytes(spec, batch):
    """Bytes of the distinct tensors autograd saves in one training forward pass (and the loss), weights
    and buffers left out."""
    model = spec.to("torch")
    model.train()
    weights = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    saved = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    x = torch.rand((batch,) + tuple(spec.graph.input_shape))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
        if out.dim() == 2:
            torch.nn.functional.cross_entropy(out, torch.zeros(batch, dtype=torch.long))
    return sum(saved.values())


def assert_kept_matches(spec, batch=3):
    measured = saved_bytes(spec, batch)
    estimated = kept_for_backward(spec.graph).bytes(batch)
    assert abs(estimated - measured) <= 0.01 * measured + 64 * batch, (estimated, measured)


@with_torch
@pytest.mark.parametrize("name", SMALL + ["resnet18"])
def test_kept_activations_match_autograd_on_the_zoo(name):
    assert_kept_matches(cnnspec.load(ROOT / "specs" / f"{name}.yaml"), batch=1 if name == "resnet18" else 3)


def layernorm_then(*layers):
    return {"cnnspec": 1, "name": "random", "input": [2, 3, 3],
            "layers": [{"layernorm": {"eps": 1e-05}, "name": "l0"}, *layers]}


# Hypothesis found the first: a layernorm on a map leaves channels-last memory behind it, which the
# flatten copies (the estimate had it as a view); after a global pool the values are [N, C, H, W] again
LAYOUT_CASES = [
    layernorm_then({"relu": None, "name": "l1"}, {"flatten": None, "name": "head"}, {"relu6": None, "name": "last"}),
    layernorm_then({"relu": None, "name": "l1"}, {"global_avgpool2d": None, "name": "gap"},
                   {"flatten": None, "name": "head"}, {"relu6": None, "name": "last"}),
    layernorm_then({"conv2d": {"filters": 4, "kernel": 1}, "name": "c"}, {"relu": None, "name": "r"},
                   {"flatten": None, "name": "head"}, {"dense": {"units": 3}, "name": "last"}),
]


@with_torch
@pytest.mark.parametrize("d", LAYOUT_CASES, ids=["flatten-copies", "pool-restores-order", "conv-keeps-the-layout"])
def test_kept_activations_follow_the_memory_layout_torch_keeps(d):
    assert_kept_matches(cnnspec.loads(json.dumps(d)))


@with_torch
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec_dicts(max_layers=6))
def test_kept_activations_match_autograd_on_random_specs(d):
    spec = cnnspec.loads(json.dumps(d))
    assume(not any(n.op in UNVERIFIED or n.attrs.get("ceil") for n in spec.graph.nodes))
    assert_kept_matches(spec)


# Ops whose saved tensors depend on how PyTorch lays them out (a crop is a strided view that a later
# flatten copies; a 'same' transposed convolution crops after; resizing and padding allocate their
# own outputs; a ceil-mode pool pads a copy where its windows overhang): cnnspec.graph.memory assumes they keep
# their input, which is an estimate, not checked here.
UNVERIFIED = frozenset({"crop2d", "conv2d_transpose", "upsample2d", "zeropad2d"})


def allocator_peak(run) -> int:
    """The highest total of live CPU allocations while ``run`` runs, from torch's profiler (every
    allocation and free of its CPU allocator, in order)."""
    from torch.profiler import ProfilerActivity, profile

    # oneDNN is off: on a CPU with AVX-512 its convolutions pad the channels of their output to
    # blocks of 16 (LeNet-5's 6-channel c1 output took 2.7x its size at inference), a kernel's
    # choice that depends on the processor, not the model's activations the estimate counts
    with torch.backends.mkldnn.flags(enabled=False), \
            profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    results = getattr(prof.profiler, "kineto_results", None)
    if results is None:
        pytest.skip("this torch's profiler does not expose its memory events")
    events = sorted((e.start_ns(), e.nbytes()) for e in results.events() if e.name() == "[memory]")
    total = peak = 0
    for _, n in events:
        total += n
        peak = max(peak, total)
    return peak


def training_steps(spec, batch, device="cpu"):
    def run():
        model = spec.to("torch").to(device)
        model.train()
        optimizer = torch.optim.Adam(model.parameters())
        x = torch.rand((batch,) + tuple(spec.graph.input_shape), device=device)
        y = torch.zeros(batch, dtype=torch.long, device=device)
        for _ in range(2):  # the first step creates Adam's state; the second runs with all of it
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
    return run


def inference(spec, batch, device="cpu"):
    def run():
        model = spec.to("torch").to(device)
        model.eval()
        with torch.no_grad():
            model(torch.rand((batch,) + tuple(spec.graph.input_shape), device=device))
    return run


TOLERANCE = 0.25


@with_torch
@pytest.mark.parametrize("name", SMALL[:4])
def test_training_and_inference_peaks_against_the_cpu_allocator(name):
    spec = cnnspec.load(ROOT / "specs" / f"{name}.yaml")
    m = estimate(spec.graph, 16)
    for mode, run in (("training", training_steps(spec, 16)), ("inference", inference(spec, 16))):
        measured = allocator_peak(run)
        estimated = getattr(m, mode).bytes
        assert abs(estimated - measured) <= TOLERANCE * measured, (mode, estimated, measured)


@with_torch
@pytest.mark.skipif(torch is None or not torch.cuda.is_available(), reason="no CUDA device here")
@pytest.mark.parametrize("name", ["digits", "keras-mnist-cnn", "resnet18"])
def test_training_peak_against_cuda_max_memory_allocated(name):
    spec = cnnspec.load(ROOT / "specs" / f"{name}.yaml")
    batch = 16
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    training_steps(spec, batch, "cuda")()
    torch.cuda.synchronize()
    measured = torch.cuda.max_memory_allocated() - before
    estimated = estimate(spec.graph, batch).training.bytes
    assert abs(estimated - measured) <= TOLERANCE * measured, (estimated, measured)
