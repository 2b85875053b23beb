"""The datasets this package ships: one tuple of their declarations (:class:`~anytouch.data.spec.DatasetSpec`).

The pre-training sources come in the original's order (docs/original/data.md#loader-contents), which is the order of the
mixed pre-training set and of its count table; then the linear-probe sets (docs/original/probes.md#probe-datasets); then
the benchmark task sets (``kind="bench"``). :mod:`anytouch.data.registry` registers this tuple; a dataset added outside
the package is registered with :func:`anytouch.data.registry.register` instead.
"""
from __future__ import annotations

from . import cloth, cloth_textile, feel, force_slip, octopi, of_real, pose, probe_sets, tacquad, tag, tvl, visgel, ycb

__all__ = ["SPECS"]

SPECS = (tacquad.SPEC, of_real.SPEC, visgel.SPEC, cloth.SPEC, octopi.SPEC, tag.SPEC, tvl.SSVTP_SPEC, tvl.TVL_SPEC,
         ycb.SPEC) + probe_sets.SPECS[:3] + (feel.SPEC,) + probe_sets.SPECS[3:] + (
    cloth_textile.SPEC, force_slip.FORCE_SPEC, force_slip.SLIP_SPEC, pose.SPEC)
