"""``DatasetSpec``: the one declaration of a dataset, read by the registry, the synthetic twin, ``prepare`` and
``verify``.

Each dataset module (``tag.py``, ``tacquad.py``, ..., ``probe_sets.py``, ``feel.py``) declares its spec(s) next to
its loader; :mod:`anytouch.data.catalog` lists them in one tuple and :mod:`anytouch.data.registry` registers that
tuple. A dataset added outside the package declares a spec the same way and calls
:func:`anytouch.data.registry.register` with it.

Adding a dataset: write one module with its loader (a :class:`~anytouch.data.base.TouchDataset` subclass, or a
probe builder), optionally its tree writer and ``prepare`` step, and its ``SPEC``; add a
``datasets/<name>/README.md``; then add ``SPEC`` to ``catalog.SPECS`` (a package dataset) or call ``register(SPEC)``
(your own). ``tests/example_source/pokes.py`` is a complete example, exercised by ``tests/test_new_dataset.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Literal, Optional, Tuple

from torch.utils.data import Dataset

__all__ = ["DatasetSpec", "SyntheticTwin", "ProbeTwin", "BenchTwin", "ContactIndex", "PROBE_TASKS", "KINDS", "loader"]

# the label rules of the synthetic probe sets (anytouch.data.synthetic.SyntheticProbe)
PROBE_TASKS = ("tag_material", "tag_roughness", "tag_hardness", "feel", "objectfolder")
KINDS = ("pretrain", "probe", "bench")


def loader(cls) -> Callable[..., Dataset]:
    """The ``DatasetSpec.build`` of a :class:`~anytouch.data.base.TouchDataset` subclass:
    ``build(split, root, **options) = cls(root, split=split, **options)``."""

    def build(split: str = "train", root: Optional[str] = None, **options) -> Dataset:
        return cls(root, split=split, **options)

    build.__doc__ = cls.__doc__
    return build


@dataclass(frozen=True)
class SyntheticTwin:
    """How the built-in synthetic twin of a pre-training source renders objects (the sensors, stride and modalities
    come from the spec itself)."""

    materials: Tuple[int, ...] = tuple(range(20))  # indices into synthetic_render.TAG_MATERIALS
    text_withheld: float = 0.0  # fraction of samples whose text is withheld (TAG test_flag rows)


@dataclass(frozen=True)
class ProbeTwin:
    """How the synthetic twin of a probe set draws its labels: ``task`` is one of :data:`PROBE_TASKS`."""

    task: str

    def __post_init__(self):
        if self.task not in PROBE_TASKS:
            raise ValueError(f"ProbeTwin task {self.task!r}; expected one of {PROBE_TASKS}")


@dataclass(frozen=True)
class BenchTwin:
    """The synthetic twin of a benchmark task dataset: ``build(split=..., num_samples=..., seed=..., **options)``
    returns a Dataset of raw bench samples (:mod:`anytouch.data.bench_base`), a pure function of its arguments."""

    build: Callable[..., Dataset]


@dataclass(frozen=True)
class ContactIndex:
    """A contact index ``prepare index --name <dataset>`` derives from frame folders already under the root."""

    frames_dir: str  # relative to the data root; every folder of frames below it is one sequence
    pattern: str  # regex of a frame file name
    index_file: str  # written under the data root


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the rest of the package needs to know about one dataset.

    Attributes:
        name: the name of :func:`anytouch.data.build_dataset` and of the ``data.paths`` / ``data.repeats`` keys.
        kind: ``pretrain`` (a source of the pre-training mix, samples of the loader contract in ``base.py``),
            ``probe`` (a linear-probe set with ``train`` / ``test`` splits and labels) or ``bench`` (a benchmark
            task set with ``train`` / ``val`` / ``test`` splits of raw samples, :mod:`anytouch.data.bench_base`).
        build: ``build(split=..., root=..., **options) -> Dataset`` on real data.
        dirs: folders (relative to the data root) where the dataset may live; ``verify`` calls it absent when none
            exists.
        sensors: the sensor ids its frames are tagged with (probes: the default id).
        stride: frame stride of its clips.
        modalities: among ``touch``, ``vision``, ``text`` (stage 2).
        video: False for image-only sources (left out of video and cross-video mixes).
        index_files: the index / list files the loader reads (documentation, and ``verify``'s notes).
        synthetic: the synthetic twin (:class:`SyntheticTwin` for pre-training sources, :class:`ProbeTwin` for probe
            sets, :class:`BenchTwin` for bench sets); None: no synthetic twin.
        tree: ``(part name, writer)``: ``writer(w: anytouch.data.tree.TreeWriter)`` writes a small synthetic copy in
            the original on-disk layout under ``w.root`` (one part may serve several specs, e.g. ``objectfolder``).
        prepare: ``prepare(raw, root, **options) -> {count: n}`` turns a raw download into the loader's layout;
            ``prepare_options`` names the CLI options it takes (``rule``, ``start_index``, ``touch_only``, ``mode``).
        contact_index: the contact index ``prepare index`` can derive for a tree already in place.
        cross_anchor: its samples are the anchors of the cross-sensor sets (TacQuad).
    """

    name: str
    kind: Literal["pretrain", "probe", "bench"]
    build: Callable[..., Dataset]
    dirs: Tuple[str, ...]
    sensors: Tuple[int, ...]
    stride: int = 1
    modalities: Tuple[str, ...] = ("touch",)
    video: bool = True
    index_files: Tuple[str, ...] = ()
    synthetic: Optional[object] = None
    tree: Optional[Tuple[str, Callable]] = None
    prepare: Optional[Callable[..., Dict[str, int]]] = None
    prepare_options: Tuple[str, ...] = ()
    contact_index: Optional[ContactIndex] = None
    cross_anchor: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"dataset {self.name!r}: kind {self.kind!r}; expected one of {KINDS}")
        if not self.dirs:
            raise ValueError(f"dataset {self.name!r}: dirs is empty; expected the folder(s) it lives in")
        bad = sorted(set(self.modalities) - {"touch", "vision", "text"})
        if bad or "touch" not in self.modalities:
            raise ValueError(f"dataset {self.name!r}: modalities {self.modalities}; expected 'touch' plus any of "
                             "'vision', 'text'")
        twin = {"pretrain": SyntheticTwin, "probe": ProbeTwin, "bench": BenchTwin}[self.kind]
        if self.synthetic is not None and not isinstance(self.synthetic, twin):
            raise ValueError(f"dataset {self.name!r}: synthetic is {type(self.synthetic).__name__}; a {self.kind} "
                             f"dataset takes a {twin.__name__}")
