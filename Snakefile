# deltalora workflow entry point. The rules live in workflow/rules/*.smk (one file per experiment
# family); the config is validated against workflow/config/schema.yaml.
