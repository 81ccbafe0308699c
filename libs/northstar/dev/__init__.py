"""Development tools outside the deployed release: the demo, benchmarks, simulators and data generators.

The EMR Serverless release (`northstar package`) leaves this package out; nothing outside it imports it."""
