#!/usr/bin/env bash
# The system packages the tests need beyond Python: a JDK and JUnit 4 for the Java tokenizer's tests
# (tests/test_golden.py), Chromium and its WebDriver for the browser demo's test (tests/test_web_demo.py, which also
# needs npm, to run `npm ci` in web_demo/). Installs them from Debian's packages when they are missing (as root, or
# with sudo); does nothing when they are there. README command 2 and .ci/run both run it first.
set -euo pipefail
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
if ! { command -v javac >/dev/null && test -f /usr/share/java/junit4.jar && test -f /usr/share/java/hamcrest-core.jar; }; then
  if ! command -v apt-get >/dev/null; then
    echo "tests/install_system_packages.sh: no apt-get here; install a JDK (javac) and JUnit 4 + Hamcrest by hand" \
         "and point JUNIT_JAR and HAMCREST_JAR at the jars" >&2
    exit 1
  fi
  echo "installing a JDK and JUnit 4 (default-jdk-headless junit4) for the Java tokenizer tests" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends default-jdk-headless junit4 >/dev/null
fi
if ! { test -x /usr/bin/chromium && test -x /usr/bin/chromedriver; }; then
  if ! command -v apt-get >/dev/null; then
    echo "tests/install_system_packages.sh: no apt-get here; install Chromium and its chromedriver by hand" \
         "and point CHROMIUM and CHROMEDRIVER at them" >&2
    exit 1
  fi
  echo "installing Chromium and its WebDriver (chromium chromium-driver) for the browser demo test" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi
if ! command -v npm >/dev/null; then
  echo "tests/install_system_packages.sh: npm not found; tests/test_web_demo.py needs Node.js and npm (7 or later)" \
       "to run 'npm ci' in web_demo/ (Debian: apt-get install nodejs npm)" >&2
fi
