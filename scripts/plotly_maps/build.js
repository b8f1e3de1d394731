// Bundle lib/index-maps.js of a plotly.js source package, as plotly.js's own esbuild-config.js does.
// Usage (in the unpacked package): node build.js VERSION OUTFILE
const esbuild = require('esbuild');
const { environmentPlugin } = require('esbuild-plugin-environment');
const { glsl } = require('esbuild-plugin-glsl');
const InlineCSSPlugin = require('esbuild-plugin-inline-css');

const [version, outfile] = process.argv.slice(2);
esbuild
    .build({
        entryPoints: ['./lib/index-maps.js'],
        outfile,
        format: 'iife',
        globalName: 'Plotly',
        bundle: true,
        minify: true,
        sourcemap: false,
        plugins: [InlineCSSPlugin(), glsl({ minify: true }), environmentPlugin({ NODE_DEBUG: false })],
        alias: { regl: '@plotly/regl', stream: 'stream-browserify' },
        define: { global: 'window', 'define.amd': 'false' },
        target: 'es2016',
        banner: {
            js:
                `/*! plotly.js v${version} with the traces scatter, scattergl and heatmap only, for Alignscope's ` +
                'linked maps (scripts/plotly_maps/build.sh; patched: scripts/plotly_maps/*.patch). ' +
                'Copyright 2012-2026, Plotly, Inc. MIT License. */'
        },
        logLevel: 'warning'
    })
    .catch(() => process.exit(1));
