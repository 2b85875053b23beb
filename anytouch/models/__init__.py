"""AnyTouch model definitions (nn.Modules only)."""
from .anytouch import AnyTouchModel, as_touch_mae
from .anytouch2 import AnyTouch2Encoder
from .config import ARCH_PRESETS, AnyTouch2Config, ArchConfig, DecoderCfg, TextCfg, TowerCfg, arch_from_hf_config, get_arch
from .mae import TouchMAE, sincos_pos_embed_2d
from .touch_encoder import TouchEncoder, random_masking
from .towers import TextTower, VisionTower

__all__ = [
    "AnyTouchModel", "AnyTouch2Encoder", "AnyTouch2Config", "as_touch_mae", "TouchMAE", "TouchEncoder", "VisionTower", "TextTower", "ArchConfig", "TowerCfg", "TextCfg",
    "DecoderCfg", "ARCH_PRESETS", "get_arch", "arch_from_hf_config", "random_masking", "sincos_pos_embed_2d",
]
