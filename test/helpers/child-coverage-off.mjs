// Loaded into every test process after tap's coverage hook (package.json "tap"."node-arg"): processes a test starts
// (servers run through tsx, the compiled bin, mpirun ranks) record no coverage of their own. Their copies of
// src/*.ts are transpiled by tsx, not by tap's TypeScript loader, so their byte ranges and source maps differ from
// the test processes' for the same files; c8 merges the ranges by URL and keeps whichever source map it read
// last, and the report came out anywhere from 86% to 45% from one run of the same suite to the next.
// @tapjs/processinfo reads this variable when a process starts; the test process itself already started its own.
process.env._TAPJS_PROCESSINFO_COVERAGE_ = '0';
