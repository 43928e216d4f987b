'use strict';
// The native addon for this runtime (lib/native-loader.js says how it is found, and what the
// error says when it is not). Written by hand: `napi build` runs with --no-js so that it does not
// put its generated loader here.
module.exports = require('./lib/native-loader.js').loadNative(__dirname, require);
