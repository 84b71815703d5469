#!/usr/bin/env bash
# The status-page browser test needs Debian's chromium. Install it when we can (root with apt);
# otherwise say so: the test then skips locally, and fails under CI=true.
set -u
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian chromium for the browser test…"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "could not install chromium; the browser test will not run"
else
  echo "chromium not found and not root: the browser test will skip (install the 'chromium' package)"
fi
exit 0
