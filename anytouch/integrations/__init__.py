"""Adapters to robot-learning frameworks, each behind its optional extra: :mod:`.lerobot` (``anytouch[lerobot]``)."""
