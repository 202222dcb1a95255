"""Seeds the demo's moto (IAM authentication on after the first SEED_ACTIONS requests).

Two accounts, as a deployment keeps them apart: the gateway's secrets are not where the roles it
lends to workloads can read.
  - the gateway's account (GATEWAY_ACCOUNT): the agent's IAM user and access key, allowed to
    assume roles (with session tags) and to read its own account's secrets; the payments API's
    upstream token (the secret the gateway injects); an operator user and key, allowed to put new
    secret versions (the rotation command);
  - the workloads' account (WORKLOAD_ACCOUNT, moto's default, the one gateway-config names): the
    role autoid-demo, which trusts the agent's user — the gateway's `aws` API vends it to
    workloads and its `secrets` API signs with it — and may read that account's secrets only
    (autoid/demo/greeting): it cannot read what the gateway injects.
Against real AWS, also scope the role's policy to the ARNs it needs (docs/AWS.md); moto checks
actions and accounts, not a Secrets Manager policy's Resource.
Writes run/aws/agent.env and run/aws/operator.env (mode 0600) with each user's keys.

Usage: moto-seed.py ENDPOINT SECRET_NAME TOKEN_FILE OUT_DIR
"""

import json
import os
import sys

import boto3

# Every request below, in order: moto authenticates everything after these.
SEED_ACTIONS = 10
GATEWAY_ACCOUNT = "111122223333"
WORKLOAD_ACCOUNT = "123456789012"  # moto's default
GREETING = "autoid/demo/greeting"


def client(service, endpoint, account):
    """A boto3 client whose (unauthenticated) seed requests land in `account`."""
    c = boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="seed", aws_secret_access_key="seed")

    def in_account(request, **_):
        request.headers["x-moto-account-id"] = account

    c.meta.events.register("before-sign.*.*", in_account)
    return c


def main():
    endpoint, secret_name, token_file, out_dir = sys.argv[1:5]
    gateway_iam = client("iam", endpoint, GATEWAY_ACCOUNT)
    workload_iam = client("iam", endpoint, WORKLOAD_ACCOUNT)

    def user(name, actions):
        gateway_iam.create_user(UserName=name)
        key = gateway_iam.create_access_key(UserName=name)["AccessKey"]
        gateway_iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
        return key

    agent = user("autoid-agent", ["sts:AssumeRole", "sts:TagSession", "secretsmanager:GetSecretValue"])
    workload_iam.create_role(RoleName="autoid-demo", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"],
                       "Principal": {"AWS": f"arn:aws:iam::{GATEWAY_ACCOUNT}:user/autoid-agent"}}]}))
    # What the demo needs: GetSecretValue in the workloads' account (the greeting), nothing else.
    # Resource "*" because moto matches a Secrets Manager policy's Resource against "*" (an ARN
    # there would refuse the greeting too); on AWS, name the greeting's ARN (docs/AWS.md).
    workload_iam.put_role_policy(RoleName="autoid-demo", PolicyName="read-greeting", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": "*"}]}))
    operator = user("autoid-operator", ["secretsmanager:PutSecretValue"])
    with open(token_file) as f:
        token = f.read().rstrip("\n")
    client("secretsmanager", endpoint, GATEWAY_ACCOUNT).create_secret(Name=secret_name, SecretString=token)
    client("secretsmanager", endpoint, WORKLOAD_ACCOUNT).create_secret(
        Name=GREETING, SecretString="hello from Secrets Manager, signed by the gateway")

    os.makedirs(out_dir, mode=0o700, exist_ok=True)
    for name, key in (("agent", agent), ("operator", operator)):
        path = os.path.join(out_dir, f"{name}.env")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"AWS_ACCESS_KEY_ID={key['AccessKeyId']}\n")
            f.write(f"AWS_SECRET_ACCESS_KEY={key['SecretAccessKey']}\n")


if __name__ == "__main__":
    main()
