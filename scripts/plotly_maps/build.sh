#!/usr/bin/env bash
# Rebuild dashboard/vendor/plotly-maps.min.js.gz: plotly.js, of the version the installed plotly package
# ships, with only the traces the linked maps draw (scatter, scattergl, heatmap). 1.5 MB instead of the
# full 4.8 MB: a first visit compiles it in ~0.5 s instead of ~1.9 s on a 2-core machine. When the plotly
# package ships another plotly.js version, the dashboard serves that package's full plotly.js instead
# (dashboard/linked_maps.py) until this is run again. Needs node >= 20 and npm (the npm registry only).
# The source gets the patches in this folder first (*.patch, each says why in its comment).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
version="$("$root/.venv/bin/python" -c 'from plotly.offline import get_plotlyjs_version; print(get_plotlyjs_version())')"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "plotly.js@$version" >/dev/null
tar xzf "plotly.js-$version.tgz"
cd package
for change in "$root"/scripts/plotly_maps/*.patch; do patch --quiet -p1 < "$change"; done
cp "$root/scripts/plotly_maps/index-maps.js" lib/
cp "$root/scripts/plotly_maps/build.js" .
npm install --silent --ignore-scripts --no-audit --no-fund \
    esbuild esbuild-plugin-environment esbuild-plugin-glsl esbuild-plugin-inline-css stream-browserify
node build.js "$version" plotly-maps.min.js
gzip -9 -n -c plotly-maps.min.js > "$root/dashboard/vendor/plotly-maps.min.js.gz"
cp LICENSE "$root/dashboard/vendor/LICENSE-plotly.js.txt"
echo "plotly.js $version: dashboard/vendor/plotly-maps.min.js.gz ($(wc -c < plotly-maps.min.js) bytes unpacked)"
