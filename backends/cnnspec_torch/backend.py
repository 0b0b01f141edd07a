"""The torch backend behind ``cnnspec build --backend torch`` and ``Spec.to("torch")``."""
from __future__ import annotations

from pathlib import Path

from cnnspec.backend.interface import Backend
from cnnspec.errors import BackendUnavailable
from cnnspec.files.atomic import atomic_write_text
from cnnspec.weights.neutral import check_tensors, expected_weights

CODE_FILE = "model.py"


class TorchBackend(Backend):
    name = "torch"
    requires = ("torch", "onnx")
    extra = "torch"

    def compile(self, graph, weights: dict | None = None, seed: int | None = 0):
        """An ``nn.Module`` in eval mode (call ``.train()`` to train it; dropout and batchnorm are real).

        ``weights``: neutral-layout arrays (numpy or torch) for every key of
        ``cnnspec.weights.expected_weights(graph)``; without them the weights come from ``seed``.
        """
        from .model import build_module

        module = build_module(graph, seed)
        if weights is not None:
            self.set_weights(module, graph, weights)
        return module

    def get_weights(self, model, graph) -> dict:
        state = model.state_dict()
        return {key: state[key].detach().to("cpu", copy=True).float().numpy() for key in expected_weights(graph)}

    def set_weights(self, model, graph, weights: dict) -> None:
        """Checked by the core (missing, unexpected, misshapen, non-finite) before torch sees them."""
        import torch

        checked = check_tensors({key: _as_numpy(value) for key, value in weights.items()}, expected_weights(graph),
                                "weights", f"do not fit spec '{graph.name}'")
        state = model.state_dict()
        with torch.no_grad():
            for key, value in checked.items():
                state[key].copy_(torch.from_numpy(value).to(state[key].dtype))

    def predict(self, model, x_nchw):
        import numpy as np
        import torch

        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                x = torch.from_numpy(np.ascontiguousarray(x_nchw, dtype=np.float32)).to(device)
                y = model(x)
                return [v.to("cpu").numpy() for v in y] if isinstance(y, tuple) else y.to("cpu").numpy()
        finally:
            model.train(was_training)

    def export_onnx_native(self, model, graph, path: str | Path) -> None:
        """PyTorch's own (TorchScript) exporter: a cross-check of the core writer in tests, not the product's path."""
        from .export import export_module

        export_module(model, graph, path, backend=self.name)

    def native_files(self, graph, model):
        from .codegen import generate_model_py

        return [(CODE_FILE, lambda path: atomic_write_text(path, generate_model_py(graph)))]


def _as_numpy(value):
    """A torch tensor (any device, any float dtype) as numpy for the core's check; others as they are."""
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu")
        return (value.float() if value.is_floating_point() else value).numpy()
    return value


def require_cuda():
    """For callers that move a compiled model to the GPU: one clear error where CUDA is absent."""
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable(f"CUDA was asked for, but this PyTorch ({torch.__version__}) sees no CUDA device")
    return torch.device("cuda")
