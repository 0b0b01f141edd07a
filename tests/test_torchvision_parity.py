"""The zoo against torchvision itself: same state_dict keys and shapes, and, with torchvision's own
(randomly initialised) weights loaded as they are, the same outputs -- on CPU and, where present, CUDA.

torchvision is not installable beside the pinned CPU torch here, so this runs where it exists (the
GPU machine in this project's checks); elsewhere it is skipped, never faked.
"""
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import cnnspec  # noqa: E402
from cnnspec.weights.neutral import expected_weights  # noqa: E402

pytestmark = pytest.mark.torch
SPECS = Path(__file__).resolve().parent.parent / "specs"
MODELS = [("resnet18.yaml", "resnet18"), ("resnet50.yaml", "resnet50"), ("resnet101.yaml", "resnet101"),
          ("mobilenet-v2.yaml", "mobilenet_v2"), ("mobilenet-v3-large.yaml", "mobilenet_v3_large"),
          ("mobilenet-v3-small.yaml", "mobilenet_v3_small"), ("efficientnet-b0.yaml", "efficientnet_b0"),
          ("vgg16.yaml", "vgg16"), ("alexnet.yaml", "alexnet"),
          ("squeezenet1-1.yaml", "squeezenet1_1"), ("googlenet.yaml", "googlenet"),
          ("convnext-tiny.yaml", "convnext_tiny")]
# constructor arguments: GoogLeNet without its training-only auxiliary heads, inputs as given
KWARGS = {"googlenet": {"aux_logits": False, "transform_input": False, "init_weights": True}}


def convnext_from_torchvision(state: dict) -> dict:
    """specs/README.md's conversion: each Linear weight [out, in] as a 1x1 convolution's [out, in, 1, 1],
    each layer_scale [C, 1, 1] as the scale op's weight [C]."""
    out = {}
    for key, value in state.items():
        if re.fullmatch(r"features\.\d+\.\d+\.layer_scale", key):
            key, value = key + ".weight", value.reshape(-1)
        elif re.fullmatch(r"features\.\d+\.\d+\.block\.[35]\.weight", key):
            value = value.reshape(*value.shape, 1, 1)
        out[key] = value
    return out


CONVERT = {"convnext_tiny": convnext_from_torchvision}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("spec_file, tv_name", MODELS)
@pytest.mark.parametrize("device", DEVICES)
def test_same_keys_and_same_outputs_as_torchvision(spec_file, tv_name, device):
    torch.manual_seed(0)
    reference = getattr(torchvision.models, tv_name)(weights=None, **KWARGS.get(tv_name, {})).eval()
    with torch.no_grad():  # non-trivial running statistics, so batchnorm really is compared
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
        for m in reference.modules():  # ConvNeXt's layer scale starts at 1e-6: make its blocks count
            if hasattr(m, "layer_scale"):
                m.layer_scale.uniform_(0.5, 1.5)
    state = {k: v.detach().numpy() for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    state = CONVERT.get(tv_name, lambda s: s)(state)
    spec = cnnspec.load(SPECS / spec_file)
    expected = expected_weights(spec.graph)
    assert set(expected) == set(state)
    assert all(tuple(state[k].shape) == shape for k, shape in expected.items())
    ours = spec.to("torch", weights=state).eval().to(device)
    reference = reference.to(device)
    x = torch.randn(2, *spec.graph.input_shape, device=device)
    with torch.no_grad():
        a, b = ours(x), reference(x)
    assert a.shape == b.shape
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
