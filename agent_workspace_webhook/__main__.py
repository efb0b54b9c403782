import sys

from agent_workspace_webhook.cli import main

sys.exit(main())
