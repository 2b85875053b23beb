"""anytouch.tokenize (open_clip's public SimpleTokenizer, HF-style padding) and encode_text on its output."""
import pytest
import torch

from anytouch.models import AnyTouchModel, get_arch
from anytouch.tokenizer import EOT_ID, tokenize

# (text, ids before the padding) as the tokenizer produced them when it loaded open_clip's tokenizer.py by file path
EXPECTED = [
    ("a smooth, hard surface", [49406, 320, 8990, 267, 1626, 7744, 49407]),
    ("Café crème — naïve façade 日本語 🙂", [49406, 15304, 1075, 12138, 614, 2005, 1097, 35689, 563, 778, 10067, 1928,
                                         39121, 44353, 34002, 508, 14860, 49407]),
    ("  Mixed CASE\twith   spaces & punctuation!? ", [49406, 6780, 2068, 593, 9006, 261, 47051, 6004, 49407]),
    ("", [49406, 49407]),
    ("rough, ridged fabric with a soft " + "rough " * 100, [49406, 8511, 267, 553, 11830, 10033, 593, 320, 3773]
     + [8511] * 67 + [49407]),  # truncated to 77 with EOT kept last
]


def test_ids_unchanged_and_padded_like_hf():
    ids, mask = tokenize([t for t, _ in EXPECTED])
    assert ids.shape == mask.shape == (len(EXPECTED), 77) and ids.dtype == mask.dtype == torch.long
    for row, m, (text, want) in zip(ids, mask, EXPECTED):
        n = len(want)
        assert row[:n].tolist() == want, text
        assert (row[n:] == EOT_ID).all() and m[:n].all() and not m[n:].any(), text


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return AnyTouchModel(get_arch("tiny"), lora=False).eval()


def test_encode_text_accepts_tokenize_output(model):
    texts = ["a smooth, hard surface", "rough fabric"]
    with torch.no_grad():
        ref = model.encode_text(*tokenize(texts))
        torch.testing.assert_close(model.encode_text(tokenize(texts)), ref, rtol=0, atol=0)
        torch.testing.assert_close(model.encode_text(texts), ref, rtol=0, atol=0)
    with pytest.raises(TypeError, match="pair alone"):
        model.encode_text(tokenize(texts), tokenize(texts)[1])
