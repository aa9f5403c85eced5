#pragma once
// Draws a simulation as an SVG chart: one panel per rule metric (the value the
// evaluator saw, each condition's threshold, and its pending and firing
// bands) and a panel of running members with the group's bounds and a marker
// per scale action. Written directly as SVG text: no Debian-packaged C++
// plotting library fits (they draw to raster or need a GUI toolkit).
//
// Elements carry classes so tests and stylesheets can find them:
//   <polyline class="metric" data-key="cpu:avg" points="..."/>  (one per gap-free run)
//   <line class="threshold up" data-condition="up[0]" .../>
//   <rect class="band firing up" data-condition="up[0]" .../>
//   <polyline class="members" points="..."/>  <line class="bound min|max" .../>
//   <circle class="action up|down" .../>
//   <polyline class="forecast" points="..."/>  (groups with forecast:; one per run with a forecast)
//
//   std::ofstream("plot.svg") << RenderPlotSvg(result, spec);
#include <string>

#include "autoscale/simulation.h"

namespace virtscale::autoscale {

std::string RenderPlotSvg(const SimulationResult& result, const SimulationSpec& spec);

}  // namespace virtscale::autoscale
