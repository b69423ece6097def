"""The tiny byte-level n-gram language model of the workflow sample.

Nothing is downloaded: the table is built at run time from a public-domain text shipped in
the package (data/public_domain.txt), uploaded once into a shared device buffer, and sampled
on the device by the kernels in csrc/kernels/lm_kernels.inc. `reference_generate` is the same
sampler in pure Python, so tests can check the device tokens exactly.
"""

from .ngram import (
    EOS_TOKEN,
    MAX_ORDER,
    NgramTable,
    builtin_table,
    load_passages,
    reference_generate,
    sample_random,
)
from .stop import StopFlag, stop_reason
from .tokenizer import StreamingDetokenizer, detokenize, encode_prompt

__all__ = [
    "EOS_TOKEN",
    "MAX_ORDER",
    "NgramTable",
    "StopFlag",
    "StreamingDetokenizer",
    "builtin_table",
    "detokenize",
    "encode_prompt",
    "load_passages",
    "reference_generate",
    "sample_random",
    "stop_reason",
]
