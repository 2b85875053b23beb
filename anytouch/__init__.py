"""anytouch: AnyTouch (Feng et al., ICLR 2025) as a maintained PyTorch library.

The public API is imported lazily, so ``import anytouch`` stays light (no torch model code, no transformers):

    import anytouch
    enc = anytouch.load_encoder("checkpoint.pth", config="CLIP-ViT-L-14-DataComp.XL-s13B-b90K")
    feat = enc(anytouch.preprocess_touch(img), sensor="digit")  # (1, 768)
"""
from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "load_encoder": "anytouch.api",
    "load_model": "anytouch.api",
    "load_probe": "anytouch.checkpoint.anytouch2_probe",
    "save_pretrained": "anytouch.api",
    "from_pretrained": "anytouch.api",
    "preprocess_touch": "anytouch.preprocess",
    "preprocess_touch_batch": "anytouch.preprocess",
    "preprocess_touch2": "anytouch.preprocess",
    "preprocess_touch2_batch": "anytouch.preprocess",
    "preprocess_vision": "anytouch.preprocess",
    "tokenize": "anytouch.tokenizer",
    "SENSOR_IDS": "anytouch.sensors",
    "sensor_id": "anytouch.sensors",
    "sensor_slot": "anytouch.sensors",
    "AnyTouch2Config": "anytouch.models.config",
    "get_arch": "anytouch.models.config",
    "ArchConfig": "anytouch.models.config",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value  # cache: later lookups skip __getattr__
        return value
    raise AttributeError(f"module 'anytouch' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
