"""Training entry points: ``python -m anytouch.train.stage1 --config configs/stage1.yaml key.sub=value ...``."""
