import sys

from callpipe_client.cli.main import main

sys.exit(main())
