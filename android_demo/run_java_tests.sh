#!/usr/bin/env bash
# Compile the pure-Java WordPiece tokenizer and its JUnit 4 test with javac, run them against golden vectors.
#
# Usage: android_demo/run_java_tests.sh [GOLDEN_FILE [VOCAB_FILE]]
#   GOLDEN_FILE  JSON lines from recipes/make_golden_vectors.py
#                (default: android_demo/app/src/test/resources/golden_vectors.jsonl, the committed edge cases)
#   VOCAB_FILE   the vocab.txt the golden file was made with (default: $VOCAB_FILE, else the default teacher's,
#                located with ${PYTHON:-python3} -c 'refbert_tf.models.checkpoints.default_teacher_dir()')
# Needs javac >= 17 and JUnit 4 + Hamcrest jars (Debian: apt-get install default-jdk-headless junit4);
# JUNIT_JAR / HAMCREST_JAR override the Debian paths. Exits non-zero if compilation or any test fails.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
golden="${1:-$here/app/src/test/resources/golden_vectors.jsonl}"
vocab="${2:-${VOCAB_FILE:-}}"
junit="${JUNIT_JAR:-/usr/share/java/junit4.jar}"
hamcrest="${HAMCREST_JAR:-/usr/share/java/hamcrest-core.jar}"

die() { echo "run_java_tests.sh: $*" >&2; exit 2; }
command -v javac >/dev/null || die "javac not found: install a JDK (Debian: apt-get install -y default-jdk-headless junit4)"
command -v java >/dev/null || die "java not found: install a JDK (Debian: apt-get install -y default-jdk-headless junit4)"
[ -f "$junit" ] || die "JUnit 4 jar not found at $junit (Debian: apt-get install -y junit4, or set JUNIT_JAR)"
[ -f "$hamcrest" ] || die "Hamcrest jar not found at $hamcrest (Debian: apt-get install -y junit4, or set HAMCREST_JAR)"
[ -f "$golden" ] || die "golden file not found: $golden"
if [ -z "$vocab" ]; then
    vocab="$("${PYTHON:-python3}" -c 'from refbert_tf.models.checkpoints import default_teacher_dir as d; print(d() / "vocab.txt")' 2>/dev/null)" \
        || die "no VOCAB_FILE given and the default teacher could not be located with ${PYTHON:-python3}"
fi
[ -f "$vocab" ] || die "vocabulary not found: $vocab"

build="$(mktemp -d "${TMPDIR:-/tmp}/refbert-java.XXXXXX")"
trap 'rm -rf "$build"' EXIT
cp="$junit:$hamcrest"
mapfile -t main_src < <(find "$here/app/src/main/java" -name '*.java')
mapfile -t test_src < <(find "$here/app/src/test/java" -name '*.java')
javac -encoding UTF-8 --release 17 -Xlint:all -Werror -d "$build/main" "${main_src[@]}"
javac -encoding UTF-8 --release 17 -Xlint:all -Werror -cp "$build/main:$cp" -d "$build/test" "${test_src[@]}"
java -Dgolden.file="$golden" -Dvocab.file="$vocab" -cp "$build/main:$build/test:$cp" \
    org.junit.runner.JUnitCore org.refbert.demo.WordPieceTokenizerTest
