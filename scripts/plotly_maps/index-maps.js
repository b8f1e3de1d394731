'use strict';

// The linked maps' plotly.js (dashboard/linked_maps.html): the core (scatter, layout, selections, colour
// bars, annotations) and the two traces the maps draw.
var Plotly = require('./core');

Plotly.register([require('./scattergl'), require('./heatmap')]);

module.exports = Plotly;
