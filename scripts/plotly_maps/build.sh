#!/usr/bin/env bash
# Rebuild dashboard/vendor/plotly-maps.min.js.gz: plotly.js, of the version the installed plotly package
# ships, with only the traces the linked maps draw (scatter, scattergl, heatmap). 1.5 MB instead of the
# full 4.8 MB: a first visit compiles it in ~0.5 s instead of ~1.9 s on a 2-core machine. When the plotly
# package ships another plotly.js version, the dashboard serves that package's full plotly.js instead
# (dashboard/linked_maps.py) until this is run again. Needs node >= 20, npm (the npm registry only) and
# GNU patch: the source gets the patches in this folder first (*.patch, each says why in its comment), each
# applied exactly (no fuzz) so that a new plotly.js whose code moved fails here instead of being mispatched.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
version="$("$root/.venv/bin/python" -c 'from plotly.offline import get_plotlyjs_version; print(get_plotlyjs_version())')"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "plotly.js@$version" >/dev/null
tar xzf "plotly.js-$version.tgz"
cd package
shopt -s nullglob
for change in "$root"/scripts/plotly_maps/*.patch; do patch --quiet --forward --fuzz=0 -p1 < "$change"; done
cp "$root/scripts/plotly_maps/index-maps.js" lib/
cp "$root/scripts/plotly_maps/build.js" .
npm install --silent --ignore-scripts --no-audit --no-fund \
    esbuild esbuild-plugin-environment esbuild-plugin-glsl esbuild-plugin-inline-css stream-browserify
node build.js "$version" plotly-maps.min.js
gzip -9 -n -c plotly-maps.min.js > "$root/dashboard/vendor/plotly-maps.min.js.gz"
cp LICENSE "$root/dashboard/vendor/LICENSE-plotly.js.txt"
echo "plotly.js $version: dashboard/vendor/plotly-maps.min.js.gz ($(wc -c < plotly-maps.min.js) bytes unpacked)"
