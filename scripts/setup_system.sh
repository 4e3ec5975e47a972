#!/usr/bin/env bash
# Install the Debian packages that the optional parts use, where this is root and apt works:
#   fluidsynth + fluid-soundfont-gm  render takes with a General MIDI kit (else the numpy kit)
#   chromium + chromium-driver       the listening page's test in a real headless browser
# Safe to run again; never fails the caller: where a package cannot be installed, the tests
# that need it skip and say why.
set -uo pipefail
log() { echo "setup_system: $*" >&2; }
need=()
command -v fluidsynth >/dev/null 2>&1 || need+=(fluidsynth)
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || need+=(fluid-soundfont-gm)
command -v chromium >/dev/null 2>&1 || need+=(chromium chromium-driver)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  log "not root or no apt-get: not installing ${need[*]} (the tests that need them will skip)"
  exit 0
fi
log "installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } >&2; then
  log "apt-get failed: ${need[*]} not installed (the tests that need them will skip)"
fi
exit 0
