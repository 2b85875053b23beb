"""Test-session defaults: offline Hugging Face, one OpenMP thread per process (the suite starts torchrun
subprocesses and DataLoader workers on a 2-core machine; oversubscribed OpenMP slows every step by 10x+)."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
