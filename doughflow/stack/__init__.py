"""What the docker-compose stack's own services need beyond the pipeline: its secrets file
(``dotenv``), the Dask cluster's TLS certificates (``certificates``) and an S3 service that answers
only requests signed with the stack's key (``s3_server``). Each runs in the image and natively in
the tests, the same command either way."""
