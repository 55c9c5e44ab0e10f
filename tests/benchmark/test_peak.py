"""Matrix-multiply peak probes (shapes and keys on tiny sizes; no timing is asserted)."""

from refbert_tf.benchmark.peak import (
    fully_connected_probe,
    machine_description,
    numpy_matmul_gflops,
    write_fully_connected_probe,
)


def test_probes_report_gflops(tmp_path):
    r = numpy_matmul_gflops(threads=1, n=64, runs=2)
    assert r["probe"] == "numpy_matmul" and r["n"] == 64 and r["best_gflops"] >= r["median_gflops"] > 0
    files = write_fully_connected_probe(tmp_path, rows=4, k=16, n=32)
    assert files["flops"] == 2 * 4 * 16 * 32
    rows = fully_connected_probe(files, threads=1, num_runs=3)
    assert [r["variant"] for r in rows] == ["float32", "dynamic_int8"]
    assert all(r["median_gflops"] > 0 and r["probe"] == "litert_fully_connected" for r in rows)


def test_machine_description_names_the_cores():
    assert "logical cores" in machine_description()
