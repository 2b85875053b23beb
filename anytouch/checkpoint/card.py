"""The model card (``README.md``) of a hub-layout folder, generated from its ``config.json`` by one function.

Everything the card states (source checkpoint and its sha256, architecture, sensors and their ids, the input
contract, the probe numbers) is read from the config that :func:`anytouch.checkpoint.hub.save_pretrained` writes, so
a card can never disagree with the weights next to it and no card is written by hand.
"""
from __future__ import annotations

from typing import Any, List, Mapping

__all__ = ["model_card"]

_KIND_TEXT = {
    "stage2": "the aligned (stage-2) AnyTouch model: touch encoder, vision and text towers, cross-sensor head",
    "stage1": "a stage-1 (masked-autoencoder) AnyTouch touch model: encoder and MAE decoder, no vision/text towers",
    "encoder": "the AnyTouch touch encoder alone",
}
# per family: (title, paper, licence of the upstream code)
_FAMILY_TEXT = {
    "anytouch": ("AnyTouch", "AnyTouch: Feng et al., ICLR 2025", "the original AnyTouch release states no licence "
                 "for its weights"),
    "anytouch2": ("AnyTouch 2", "AnyTouch 2: GeWu-Lab, ICLR 2026", "the AnyTouch 2 code is MIT-licensed, but its "
                  "release states no separate licence for the weights and its Sparsh benchmark part is CC BY-NC 4.0"),
}

LICENCE_CAVEAT = (
    "The anytouch code is MIT-licensed. These weights are derived from the checkpoint named above; {release}, and "
    "the pre-training data sets carry their own terms (some are non-commercial, e.g. Feel is CC BY-NC-ND). Check the "
    "terms of the source weights and data with their authors before redistributing these weights or using them "
    "commercially."
)


def _sensor_rows(config: Mapping[str, Any]) -> List[str]:
    rows = [f"| `{name}` | {sid} | {'universal token: any sensor, also one never seen' if sid == -1 else 'paper sensor'} |"
            for name, sid in config["sensors"].items()]
    rows += [f"| (slot {slot}) | {slot} | trained by `anytouch adapt` on a new sensor |"
             for slot in config.get("adapted_slots", [])]
    return ["| sensor | id | |", "|---|---:|---|", *rows]


def _probe_lines(probe: Mapping[str, Any]) -> List[str]:
    from ..probe.report import markdown_table  # here, not at the top: only cards with probe numbers need it

    return ["## Evaluation", "", "Linear-probe results this model was evaluated with (`anytouch eval`):", "",
            markdown_table(probe["rows"])]


def _input_lines(inp: Mapping[str, Any], family: str) -> List[str]:
    size, frames = inp["image_size"], inp["frames"]
    resize = (f"- frames: RGB, {size}x{size} after a plain resize (aspect ratio not kept, bilinear, antialiased), "
              "values in [0, 1] then normalised with")
    if family == "anytouch":
        return [resize, f"  mean {inp['mean']} and std {inp['std']} (`anytouch.preprocess_touch` does all of this)",
                f"- static input: one frame (B, 3, H, W); dynamic input: the last {frames} frames, oldest first "
                f"(B, {frames}, 3, H, W)"]
    bg, stride = inp["background"], inp["frame_stride"]
    return [f"- background subtraction first: each frame minus a no-contact frame of the same sensor, plus "
            f"{bg['offset']:.6g} ({round(bg['offset'] * 255)}/255), clamped to [0, 1], in float, before the resize",
            resize, f"  the CLIP statistics mean {inp['mean']} and std {inp['std']} (`enc.preprocess(frames, "
            "background=bg)` does all of this)",
            f"- clips of exactly {frames} frames taken {stride} apart (the newest last; tubes of {inp['tube_size']} "
            f"frames), (B, {frames}, 3, H, W); a single frame (B, 3, H, W) counts as {frames} identical frames"]


def _use_lines(family: str, proj: int) -> List[str]:
    load = "enc = anytouch.load_encoder(\"hf-hub:ORG/NAME\")  # or the folder's path"
    if family == "anytouch":
        return [load, f"feat = enc(anytouch.preprocess_touch(frame), sensor=\"digit\")  # (1, {proj})"]
    return [load, "x = enc.preprocess(clip, background=bg)  # clip (B, T, H, W, 3) uint8, bg (B, H, W, 3)",
            f"feat = enc(x, sensor=\"digit\")  # (B, {proj})"]


def model_card(config: Mapping[str, Any]) -> str:
    """The Markdown model card of a hub folder whose ``config.json`` holds ``config``.

    Args:
        config: the folder's config (``family``, ``kind``, ``arch``, ``sensors``, ``adapted_slots``, ``input``,
            ``provenance``, optional ``probe`` with the ``rows`` of a probe ``results.json``).

    Returns:
        The card's text: YAML front matter (library, tags, licence ``other``) and sections for the source, the
        input contract, the sensors, loading, the evaluation (when probe numbers are given) and the licence caveat.
    """
    arch, inp, prov = config["arch"], config["input"], config["provenance"]
    family = config.get("family", "anytouch")
    title, paper, release = _FAMILY_TEXT[family]
    what = _KIND_TEXT[config["kind"]].replace("AnyTouch", title)
    touch = arch["touch"]
    source = prov.get("source") or "an in-memory model (no source file recorded)"
    sha = prov.get("source_sha256")
    fmt = prov.get("source_format")
    lines: List[str] = [
        "---", "library_name: anytouch", "license: other", "pipeline_tag: feature-extraction",
        "tags: [tactile, touch, robotics, anytouch, vision-based-tactile-sensor]", "---", "",
        f"# {title} {arch['name']} ({config['kind']})", "",
        f"This folder holds {what}, in the layout `anytouch` loads by path or by hub id ({paper}).", "",
        "## Source", "",
        f"- converted from: `{source}`" + (f" ({fmt})" if fmt else ""),
        *([f"- source sha256: `{sha}`"] if sha else []),
        f"- written by anytouch {prov.get('anytouch')} (torch {prov.get('torch')}, git {prov.get('git') or 'n/a'}) "
        f"on {prov.get('created')}",
        f"- architecture `{arch['name']}`: touch ViT {touch['layers']} layers x {touch['width']} wide, patch "
        f"{touch['patch_size']}, projection {arch['projection_dim']}", "",
        "## Input contract", "", *_input_lines(inp, family),
        "- sensor id: one per sample (name or int, below); -1 is the universal token", "",
        "## Sensors", "", *_sensor_rows(config), "",
        "For a sensor the model never saw, use the universal token (`sensor=\"universal\"`), or train a free sensor "
        "slot on a few hundred of its frames with `anytouch adapt`.", "",
        "## Use", "", "```python", "import anytouch", "", *_use_lines(family, arch["projection_dim"]), "```", "",
    ]
    if config.get("probe"):
        lines += _probe_lines(config["probe"]) + [""]
    lines += ["## Licence", "", LICENCE_CAVEAT.format(release=release), ""]
    return "\n".join(lines)

