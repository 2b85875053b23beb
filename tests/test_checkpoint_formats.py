"""The format registry (anytouch.checkpoint.formats) is the single point where a checkpoint's format is decided."""
import pytest
import torch
from checkpoint_fixtures import TINY, write_every_format

import anytouch
from anytouch.checkpoint import CorruptCheckpointError, formats, read_checkpoint
from anytouch.checkpoint.common import ConversionReport, load_assign
from anytouch.checkpoint.files import CheckpointFile
from anytouch.checkpoint.io import save_safetensors
from anytouch.models import TouchEncoder

# fixture name -> (format, kind) every fixture of checkpoint_fixtures.write_every_format must be read as
EXPECTED = {
    "ours_pt": ("ours", "stage2"), "ours_st": ("ours", "stage2"), "original_stage1": ("original_stage1", "stage1"),
    "original_stage2": ("original_stage2", "stage2"), "hf_folder": ("hf_clip", "clip"), "hf_bin": ("hf_clip", "clip"),
    "open_clip": ("open_clip", "clip"), "anytouch2": ("anytouch2", "encoder"), "anytouch2_st": ("anytouch2", "encoder"),
    "hub_folder": ("hub", "stage2"), "hub_folder_anytouch2": ("hub", "encoder"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_every_format(tmp_path_factory.mktemp("formats"))


def _accepting(path):
    """Names of every registered format whose detect accepts ``path`` (not just the first)."""
    names = dict.fromkeys(n for fmt in formats.FORMATS for n in fmt.folder_files)
    allow = tuple(c for fmt in formats.FORMATS for c in fmt.allow)
    path = path / next(n for n in names if (path / n).is_file()) if path.is_dir() else path
    f = CheckpointFile(path, path, allow)
    return [fmt.name for fmt in formats.FORMATS if fmt.detect(f)]


def test_each_format_detects_exactly_its_own_files(files):
    assert set(files) == set(EXPECTED)
    for name, path in files.items():
        fmt, kind = EXPECTED[name]
        assert _accepting(path) == [fmt], name  # exclusive: detection does not depend on the registry order
        loaded = read_checkpoint(path)
        assert (loaded.format, loaded.kind) == (fmt, kind), name
        assert (loaded.arch is not None) == (fmt in ("ours", "hub")), name


def test_every_registered_format_has_a_fixture():
    assert {fmt for fmt, _ in EXPECTED.values()} == {f.name for f in formats.FORMATS}


def _toy_build(loaded, what, config, inflate, merge_lora):
    if what != "encoder":
        raise ValueError(f"{loaded.weights}: a toy checkpoint holds only a touch encoder, not a {what!r}")
    report = ConversionReport(str(loaded.weights), "toy")
    sd = {k[len("toy."):]: v for k, v in loaded.content.items()}
    return load_assign(TouchEncoder(TINY), sd, str(loaded.weights)), report


TOY = formats.Format("toy", "a toy test checkpoint", lambda f: f.metadata.get("format") == "toy", _toy_build,
                     kind=lambda sd: "stage1", read=lambda f: (f.obj, None), folder_files=("toy.safetensors",))


def test_a_new_format_is_one_registry_entry(tmp_path, monkeypatch):
    torch.manual_seed(3)
    enc = TouchEncoder(TINY).eval()
    (tmp_path / "folder").mkdir()
    path = save_safetensors({"toy." + k: v for k, v in enc.state_dict().items()}, tmp_path / "folder" / "toy.safetensors",
                            {"format": "toy"})
    with pytest.raises(ValueError, match="unrecognised checkpoint.*toy.blocks.0.*expected one of: an anytouch checkpoint"):
        read_checkpoint(path)
    monkeypatch.setattr(formats, "FORMATS", formats.FORMATS + (TOY,))
    assert read_checkpoint(path).format == "toy"
    x = torch.randn(2, 3, 56, 56)
    for given in (path, tmp_path / "folder"):  # the file, and the folder through folder_files
        loaded, report = anytouch.load_encoder(given, return_report=True)
        assert report.format == "toy" and not loaded.training
        with torch.no_grad():
            assert torch.equal(loaded(x, 1), enc(x, 1))
    with pytest.raises(ValueError, match="holds only a touch encoder, not a 'model'"):
        anytouch.load_model(path)


def test_truncated_and_garbage_files_give_a_clear_error(files, tmp_path):
    for name in ("ours_pt", "ours_st", "original_stage2", "hf_bin"):
        data = files[name].read_bytes()
        bad = tmp_path / f"cut_{files[name].name}"
        bad.write_bytes(data[: len(data) // 2])
        with pytest.raises(CorruptCheckpointError, match=f"cannot read checkpoint {bad} .*truncated"):
            anytouch.load_model(bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all\n" * 10)
    with pytest.raises(CorruptCheckpointError, match=f"{junk} \\(240 bytes\\).*not a torch checkpoint"):
        anytouch.load_encoder(junk)
    empty = tmp_path / "empty.safetensors"
    empty.touch()
    with pytest.raises(CorruptCheckpointError, match=f"{empty} \\(0 bytes\\).*not a safetensors file"):
        read_checkpoint(empty)


def test_a_file_holding_no_dict_is_named(tmp_path):
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="list.pt: expected a state dict or a checkpoint dict, got a list"):
        anytouch.load_model(tmp_path / "list.pt")
