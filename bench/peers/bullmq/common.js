'use strict';
// common.js - what api.js and worker.js share: argument reading and the job options.

// arg(NAME, DEFAULT): the value after NAME on the command line; exits with a usage error
// when it is missing and there is no default.
function arg(name, def) {
	const i = process.argv.indexOf(name);
	if (i >= 0 && i + 1 < process.argv.length)
		return process.argv[i + 1];
	if (def !== undefined)
		return def;
	process.stderr.write(`${process.argv[1]}: ${name} is required\n`);
	process.exit(2);
}

// Every job (one delivery) gets these. attempts 8 with the first retry after 5 s is the
// count and first step of hookd's default schedule (1 + 7 retries, first at 5 s); BullMQ's
// exponential backoff then doubles (10 s, 20 s, ... 320 s) where hookd's schedule reaches
// hours. A completed job is deleted once 1,000 newer ones completed, so Redis stays bounded
// while the last few are still there to look at (hookd keeps every attempt's record; BullMQ's
// own default keeps every completed job forever). A job that failed all its attempts is kept:
// it is the dead letter an operator has to see.
const jobOptions = {
	attempts: 8,
	backoff: { type: 'exponential', delay: 5000 },
	removeOnComplete: { count: 1000 },
	removeOnFail: false,
};

module.exports = { arg, jobOptions };
