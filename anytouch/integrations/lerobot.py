"""LeRobot adapter: AnyTouch tactile features as a LeRobot observation processor step.

LeRobot (``pip install 'anytouch[lerobot]'``) builds a policy's inputs with a pipeline of processor steps
(``lerobot.processor``): each step maps an observation dict to a new one and says, in ``transform_features``, how
the feature description changes, and steps registered with ``ProcessorStepRegistry`` can be saved and re-created
by name. :class:`TactileFeatureStep` is such a step: it reads tactile frame histories from one observation key
(uint8 or float in [0, 1], (B, T, H, W, 3) / (B, T, 3, H, W), or single frames), embeds them with a frozen
:class:`anytouch.policy.TactileEncoder` (the encoder's own window, statistics and, from ``background_key``, the
no-contact background frame of each sample, which AnyTouch 2 is trained with), and writes the (B, D) features to
an output key, by default ``observation.environment_state`` (concatenated after what is already there), the vector
input LeRobot's ACT and Diffusion policies read. The frame (and background) keys are dropped unless
``keep_frames=True``.

The LeRobot class (registered as ``"anytouch_tactile_features"``) is made when lerobot is importable: import this
module before ``DataProcessorPipeline.from_pretrained`` loads a pipeline that names the step. Without lerobot,
:class:`TactileFeatureStep` works on plain observation dicts (``step.observation(obs)``) and building the
LeRobot class raises an ImportError that says how to install it.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from ..policy import TactileEncoder
from ..sensors import SensorLike

__all__ = ["TactileFeatureStep", "REGISTRY_NAME", "lerobot_step_class", "make_lerobot_step"]

REGISTRY_NAME = "anytouch_tactile_features"
ENV_STATE = "observation.environment_state"  # lerobot.utils.constants.OBS_ENV_STATE


class TactileFeatureStep:
    """Observation step: tactile frames under ``input_key`` -> AnyTouch features under ``output_key``.

    Args:
        checkpoint: what :func:`anytouch.load_encoder` reads (path, hub folder, ``hf-hub:org/name``); recorded in
            :meth:`get_config` so that a saved pipeline re-creates the step.
        input_key: the observation key of the frames, e.g. ``observation.images.tactile``.
        output_key: where the features go; an existing vector there gets them appended.
        sensor: sensor name or id (``"universal"`` for a sensor the model never saw; ``"dm"`` only for AnyTouch 2).
        background_key: the observation key of each sample's no-contact frame, (B, H, W, 3) / (B, 3, H, W) (or one
            frame for the batch), subtracted by the encoder's preprocessing; None: no background subtraction.
        device: where the encoder runs (``"auto"``: cuda when available).
        keep_frames: keep the frames in the observation (default: drop them, the policy sees the features).
        encoder: an already-built TactileEncoder to use instead of loading ``checkpoint``.
    """

    def __init__(self, checkpoint: Optional[Union[str, Path]] = None, input_key: str = "observation.images.tactile",
                 output_key: str = ENV_STATE, sensor: SensorLike = "universal", device: str = "auto",
                 keep_frames: bool = False, encoder: Optional[TactileEncoder] = None,
                 background_key: Optional[str] = None):
        if (checkpoint is None) == (encoder is None):
            raise ValueError("TactileFeatureStep needs exactly one of checkpoint= (saved with the pipeline) or "
                             "encoder= (a TactileEncoder)")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.input_key, self.output_key, self.sensor = input_key, output_key, sensor
        self.device, self.keep_frames, self.background_key = device, keep_frames, background_key
        self.encoder = (encoder or TactileEncoder(self.checkpoint, sensor=sensor)).to(device).eval()

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @torch.no_grad()
    def observation(self, observation: Dict[str, Any]) -> Dict[str, Any]:
        """The observation with the features added under ``output_key`` (see the class docstring)."""
        for key, what in ((self.input_key, "input_key= to the key of the tactile frames"),
                          (self.background_key, "background_key= to the key of the no-contact frames")):
            if key is not None and key not in observation:
                raise KeyError(f"TactileFeatureStep: observation has no {key!r} (keys: {sorted(observation)}); "
                               f"set {what}")
        frames = torch.as_tensor(observation[self.input_key]).to(self.device)
        background = None if self.background_key is None else \
            torch.as_tensor(observation[self.background_key]).to(self.device)
        single = frames.ndim == 3  # one unbatched frame (H, W, 3) / (3, H, W); pipelines batch everything else
        feats = self.encoder(frames.unsqueeze(0) if single else frames, background=background)
        if single:
            feats = feats[0]
        out = dict(observation)
        if not self.keep_frames:
            for key in self._frame_keys():
                del out[key]
        prev = out.get(self.output_key)
        if prev is not None:
            prev = torch.as_tensor(prev, device=feats.device, dtype=feats.dtype)
            feats = torch.cat([prev, feats], dim=-1)
        out[self.output_key] = feats
        return out

    def _frame_keys(self) -> tuple:
        return (self.input_key,) if self.background_key is None else (self.input_key, self.background_key)

    def output_shape(self, previous: Optional[tuple] = None) -> tuple:
        """Shape of the ``output_key`` feature when it was ``previous`` before this step (None: absent)."""
        return (self.dim + (previous[-1] if previous else 0),)

    def get_config(self) -> Dict[str, Any]:
        """JSON-serialisable arguments that re-create the step (LeRobot saves them with the pipeline)."""
        if self.checkpoint is None:
            raise ValueError("TactileFeatureStep built from encoder= cannot be saved: build it with checkpoint= "
                             "(a path or hf-hub: id) so that a saved pipeline can load the encoder again")
        return {"checkpoint": self.checkpoint, "input_key": self.input_key, "output_key": self.output_key,
                "sensor": self.sensor, "device": self.device, "keep_frames": self.keep_frames,
                "background_key": self.background_key}

    def state_dict(self) -> Dict[str, torch.Tensor]:
        return {}  # the encoder's weights live in the checkpoint get_config names, not in the pipeline files

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        if state:
            raise ValueError(f"TactileFeatureStep keeps no state; got keys {sorted(state)}")

    def reset(self) -> None:
        return None


_CLASS = None


def lerobot_step_class() -> type:
    """The LeRobot ``ObservationProcessorStep`` subclass of :class:`TactileFeatureStep`, registered with
    ``ProcessorStepRegistry`` as ``"anytouch_tactile_features"`` (made once)."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    try:  # the optional dependency: imported only when a LeRobot step is asked for
        from lerobot.configs.types import FeatureType, PipelineFeatureType, PolicyFeature
        from lerobot.processor import ObservationProcessorStep, ProcessorStepRegistry
    except ImportError as e:
        raise ImportError(f"the LeRobot adapter needs lerobot ({e}): pip install 'anytouch[lerobot]' (lerobot 0.6 "
                          "needs Python >= 3.12 and torch < 2.12)") from e

    class AnyTouchTactileStep(TactileFeatureStep, ObservationProcessorStep):
        """AnyTouch tactile features as a LeRobot observation processor step (see TactileFeatureStep)."""

        def transform_features(self, features):
            obs = dict(features.get(PipelineFeatureType.OBSERVATION, {}))
            if not self.keep_frames:
                for key in self._frame_keys():
                    obs.pop(key, None)
            prev = obs.get(self.output_key)
            obs[self.output_key] = PolicyFeature(type=FeatureType.ENV,
                                                 shape=self.output_shape(None if prev is None else prev.shape))
            return {**features, PipelineFeatureType.OBSERVATION: obs}

    _CLASS = ProcessorStepRegistry.register(name=REGISTRY_NAME)(AnyTouchTactileStep)
    return _CLASS


def make_lerobot_step(checkpoint: Optional[Union[str, Path]] = None, **kwargs: Any):
    """A registered LeRobot step instance (arguments as :class:`TactileFeatureStep`)."""
    return lerobot_step_class()(checkpoint, **kwargs)


if importlib.util.find_spec("lerobot") is not None:
    lerobot_step_class()  # register now, so that saved pipelines naming the step load after importing this module
