#!/usr/bin/env bash
# Installs a JDK 17+ and Maven from the distribution's packages (Debian/Ubuntu, apt-get), once; a no-op
# when `java` and `javac` 17+ and `mvn` are already on PATH. The local Kafka broker and Kafka's tools
# run on the JDK; Maven fetches the Kafka jars from Maven Central and builds the Java programs.
# The JDK package is the first of openjdk-17-jdk-headless, default-jdk-headless (when it is 17 or
# newer) and openjdk-21-jdk-headless that apt knows. Needs root or passwordless sudo.
#   infra/install-jdk.sh            install what is missing
#   infra/install-jdk.sh --dry-run  say what is missing and print the commands, run nothing
# Prints one line on failure and exits 1.
set -uo pipefail

dry_run=""
case "${1:-}" in
  --dry-run) dry_run=1 ;;
  "") ;;
  *) echo "usage: infra/install-jdk.sh [--dry-run]" >&2; exit 2 ;;
esac

fail() { echo "infra/install-jdk.sh: cannot install a JDK 17+ and Maven: $*" >&2; exit 1; }

# The major version a `java -version`/`javac -version` prints ("17.0.15" -> 17, "1.8.0" -> 8), else 0.
major_version() {
  local v; v=$("$1" -version 2>&1 | grep -E 'version|^javac ' | head -1 | sed -n 's/^[^0-9]*\([0-9][0-9.]*\).*/\1/p')
  case "$v" in 1.*) v=${v#1.} ;; esac
  printf '%s' "${v%%.*}" | grep -E '^[0-9]+$' || printf 0
}

jdk_ok() {
  command -v java >/dev/null 2>&1 && command -v javac >/dev/null 2>&1 \
    && [ "$(major_version java)" -ge 17 ] && [ "$(major_version javac)" -ge 17 ]
}

missing=()
jdk_ok || missing+=(jdk)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
[ ${#missing[@]} -eq 0 ] && exit 0

command -v apt-get >/dev/null 2>&1 || fail "apt-get not found (install a JDK 17+ and Maven, and put java, javac and mvn on PATH)"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || fail "not root and no sudo (run as root: apt-get install openjdk-17-jdk-headless maven)"
  sudo="sudo -n"
fi

# The candidate version apt would install for a package, empty when it knows none.
candidate() { apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p' | grep -v '^(none)$'; }

jdk_package() {
  local v
  [ -n "$(candidate openjdk-17-jdk-headless)" ] && { echo openjdk-17-jdk-headless; return; }
  v=$(candidate default-jdk-headless)  # e.g. 2:1.17-74 on Debian 12, 2:1.11-72 (too old) on Debian 11
  v=${v#*:}; v=${v#1.}; v=${v%%[-.]*}
  [ -n "$v" ] && [ "$v" -ge 17 ] 2>/dev/null && { echo default-jdk-headless; return; }
  [ -n "$(candidate openjdk-21-jdk-headless)" ] && { echo openjdk-21-jdk-headless; return; }
  return 1
}

run() {
  echo "+ $*"
  [ -n "$dry_run" ] || DEBIAN_FRONTEND=noninteractive "$@" >>"$log" 2>&1
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
case "${missing[*]}" in
  "jdk maven") what="a JDK 17+ and Maven" ;;
  jdk) what="a JDK 17+" ;;
  *) what="Maven" ;;
esac
echo "posvenda needs $what (the Kafka broker and tools run on the JDK; Maven fetches the Kafka jars): installing with ${sudo:+sudo }apt-get"
packages=()
if [[ " ${missing[*]} " == *" jdk "* ]]; then
  jdk=$(jdk_package)
  if [ -z "$jdk" ]; then  # package lists missing or stale (a fresh image): refresh them once
    run $sudo apt-get update -q || fail "apt-get update failed: $(grep -E '^E:' "$log" | head -1)"
    jdk=$(jdk_package) || { [ -n "$dry_run" ] && jdk=openjdk-17-jdk-headless; }
  fi
  [ -n "$jdk" ] || fail "apt knows no openjdk-17-jdk-headless, default-jdk-headless 17+ or openjdk-21-jdk-headless"
  packages+=("$jdk")
fi
[[ " ${missing[*]} " == *" maven "* ]] && packages+=(maven)
if ! run $sudo apt-get install -y -q --no-install-recommends "${packages[@]}"; then
  run $sudo apt-get update -q
  run $sudo apt-get install -y -q --no-install-recommends "${packages[@]}" \
    || fail "apt-get install ${packages[*]} failed: $(grep -E '^E:' "$log" | head -1)"
fi
[ -n "$dry_run" ] && exit 0
hash -r
jdk_ok || fail "installed ${packages[*]}, but java and javac 17+ are not the ones on PATH (see update-alternatives --config java)"
command -v mvn >/dev/null 2>&1 || fail "installed maven, but mvn is not on PATH"
echo "installed ${packages[*]}: java $(major_version java), $(mvn -v 2>/dev/null | head -1)"
