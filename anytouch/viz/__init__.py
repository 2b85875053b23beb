"""Pictures (matplotlib, Agg backend): MAE grids, t-SNE of touch embeddings, training curves. Each writes a PNG;
``anytouch viz {mae,tsne,curves}`` on the command line (:mod:`anytouch.cli.viz`). Names are imported lazily, so that
``import anytouch.viz`` does not load matplotlib."""
from importlib import import_module

_LAZY = {
    "mae_grid": "mae", "mae_panels": "mae", "mae_errors": "mae",
    "plot_tsne": "tsne", "tsne_2d": "tsne", "collect_embeddings": "tsne", "synthetic_sensor_set": "tsne",
    "neighbour_agreement": "tsne",
    "plot_curves": "curves", "read_log": "curves",
}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
