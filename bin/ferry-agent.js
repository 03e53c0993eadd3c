#!/usr/bin/env node
import "../build/agent/src/cli/main.js";
