"""A benchmark of tactile encoders side by side: encoder plug-ins with their own input contracts
(:mod:`.encoders`), linear and attentive heads (:mod:`.heads`), a protocol that selects on validation only
(:mod:`.protocol`), and a resumable runner writing results.json, a Markdown table and a plot (:mod:`.runner`).
Run it with ``anytouch bench`` or ``python -m anytouch.bench`` (:mod:`.command`).
"""
