"""How ``cnnspec run`` shows its result: aligned lines for people, or one JSON document."""
from __future__ import annotations

import json

PROBABILITY_NOTES = {
    "model": "probabilities as the model outputs them (it ends in softmax)",
    "softmax": "probabilities: softmax applied to the model's outputs (it does not end in softmax)",
}


def format_results(result: dict) -> str:
    """The human-readable report: per sample, the top classes with labels and probabilities, aligned;
    for a model with several outputs, each output's in turn under a line that names it."""
    if "outputs" in result:
        shapes = ", ".join(f"{o['name']} {o['output_shape']}" for o in result["outputs"])
        lines = [f"{result['model']} ({result['name']}) on {result['provider']}, input {result['input_shape']}, "
                 f"outputs {shapes}"]
        for entry in result["outputs"]:
            lines.append(f"output {entry['name']} {entry['output_shape']}:")
            lines += ["  " + line for line in _one_output(entry)]
        return "\n".join(lines)
    lines = [f"{result['model']} ({result['name']}) on {result['provider']}, input {result['input_shape']}, "
             f"output {result['output_shape']}"]
    return "\n".join(lines + _one_output(result))


def _one_output(result: dict) -> list[str]:
    lines = []
    if result["probabilities"] is None:
        width = max(len(_where(r)) for r in result["results"])
        for r in result["results"]:
            lines.append(f"{_where(r):<{width}}  min {r['min']:.6g}  max {r['max']:.6g}  mean {r['mean']:.6g}"
                         f"  -> {r['saved']}" + (f", mask {r['mask']}" if r.get("mask") else ""))
        return lines
    lines.append(PROBABILITY_NOTES[result["probabilities"]])
    all_top = [t for r in result["results"] for t in r["top"]]
    index_width = max(len(str(t["class"])) for t in all_top)
    # labels that only repeat the class index ("0".."9" for digits) are shown once
    named = any(t["label"] and t["label"] != str(t["class"]) for t in all_top)
    label_width = max((len(t["label"]) for t in all_top if t["label"]), default=0) if named else 0
    for r in result["results"]:
        lines.append(_where(r) + (f"  -> {r['saved']}" if r.get("saved") else ""))
        for rank, t in enumerate(r["top"], 1):
            label = f"  {t['label']:<{label_width}}" if label_width else ""
            lines.append(f"  {rank:>2}. {t['class']:>{index_width}}{label}  {t['probability']:.4f}")
    return lines


def _where(entry: dict) -> str:
    return entry["input"] if entry["index"] is None else f"{entry['input']}[{entry['index']}]"


def to_json(result: dict) -> str:
    """Strict JSON: NaN and Infinity are not JSON (run refuses non-finite outputs before this)."""
    return json.dumps(result, indent=2, ensure_ascii=False, allow_nan=False)
