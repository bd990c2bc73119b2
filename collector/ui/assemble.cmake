# cmake -DSRC=collector/ui -DNPM=<dir with node_modules> -DOUT=<ui dir> -P assemble.cmake
# Lays out the web UI: our files at OUT/, the libraries at OUT/vendor/, the
# speedscope release bundle at OUT/speedscope/ (served at /speedscope/).
file(REMOVE_RECURSE ${OUT})
file(MAKE_DIRECTORY ${OUT}/vendor)
file(GLOB ours ${SRC}/*.html ${SRC}/*.js ${SRC}/*.css)
file(COPY ${ours} DESTINATION ${OUT})
set(M ${NPM}/node_modules)
file(COPY
  ${M}/d3-flame-graph/dist/d3-flamegraph.min.js
  ${M}/d3-flame-graph/dist/d3-flamegraph.css
  ${M}/d3-flame-graph/dist/d3-flamegraph-tooltip.min.js
  ${M}/d3-selection/dist/d3-selection.min.js
  ${M}/uplot/dist/uPlot.iife.min.js
  ${M}/uplot/dist/uPlot.min.css
  DESTINATION ${OUT}/vendor)
file(COPY ${M}/speedscope/dist/release/ DESTINATION ${OUT}/speedscope)
file(COPY ${M}/speedscope/LICENSE DESTINATION ${OUT}/speedscope)
