#!/usr/bin/env node
import "../build/controller/src/cli/main.js";
