"""Kernel-profile parsing and op-type attribution on a real ``perf report`` excerpt (no perf needed)."""

import pytest

from refbert_tf.benchmark.profile import ProfileUnavailable, op_type_of, parse_perf_report, summarize_kernels

# From `perf report --stdio --no-children --sort dso,sym` of the RefBERT dynamic-range int8 file at 128 tokens
REPORT = """# Samples: 1K of event 'cpu-clock:ppp'
#
    20.24%  libpywrap_litert_common.so   [.] xnn_qd8_f32_qc8w_gemm_minmax_ukernel_16x64c4__avx512amx
    11.69%  libpywrap_litert_common.so   [.] tflite::reference_ops::RunSelectOp<bool, unsigned int>
     6.79%  libpywrap_litert_common.so   [.] xnn_f32_gemm_minmax_ukernel_7x32__avx512f_broadcast
     3.92%  libc.so.6                    [.] __memmove_avx512_unaligned_erms
     3.92%  libscipy_openblas64_-32a4b2a6.so  [.] blas_thread_server
     3.29%  libpython3.11.so.1.0         [.] _PyEval_EvalFrameDefault
     0.63%  [kernel.kallsyms]            [k] exc_page_fault
"""


def test_report_lines_and_op_types():
    rows = parse_perf_report(REPORT)
    assert len(rows) == 7 and rows[0] == {
        "percent": 20.24,
        "dso": "libpywrap_litert_common.so",
        "symbol": "xnn_qd8_f32_qc8w_gemm_minmax_ukernel_16x64c4__avx512amx",
    }
    assert op_type_of(rows[0]["symbol"]).startswith("int8 GEMM")
    assert op_type_of(rows[1]["symbol"]).startswith("SELECT_V2")
    assert op_type_of(rows[2]["symbol"]).startswith("float32 GEMM")
    assert op_type_of("some_unknown_symbol") == "other"


def test_shares_are_of_the_runtime_samples_only():
    s = summarize_kernels(parse_perf_report(REPORT))
    total = 20.24 + 11.69 + 6.79 + 3.92  # LiteRT and libc; Python, OpenBLAS and the kernel left out
    assert s["runtime_share_of_samples"] == pytest.approx(total)
    assert s["op_types"]["int8 GEMM (dynamic-range FULLY_CONNECTED)"] == pytest.approx(100 * 20.24 / total, abs=0.01)
    assert sum(s["op_types"].values()) == pytest.approx(100, abs=0.05)
    with pytest.raises(ProfileUnavailable, match="no perf sample"):
        summarize_kernels(parse_perf_report("    50.00%  libpython3.11.so.1.0  [.] main\n"))
