"""Seeds the demo's moto (IAM authentication on after the first SEED_ACTIONS requests).

Creates, through the real AWS APIs (boto3):
  - the agent's IAM user and access key, allowed to assume roles (with session tags) and to read
    secrets;
  - the role autoid-demo, which trusts the agent's user (the gateway's `aws` API vends it) and may
    read secrets (the gateway's `secrets` API signs with it);
  - an operator user and key, allowed to put new secret versions (the rotation command);
  - the payments API's upstream token, and autoid/demo/greeting, as Secrets Manager secrets.
Writes run/aws/agent.env and run/aws/operator.env (mode 0600) with each user's keys.

Usage: moto-seed.py ENDPOINT SECRET_NAME TOKEN_FILE OUT_DIR
"""

import json
import os
import sys

import boto3

# Every request below, in order: moto authenticates everything after these.
SEED_ACTIONS = 10
ACCOUNT = "123456789012"  # moto's


def main():
    endpoint, secret_name, token_file, out_dir = sys.argv[1:5]
    kw = dict(endpoint_url=endpoint, region_name="us-east-1",
              aws_access_key_id="seed", aws_secret_access_key="seed")
    iam = boto3.client("iam", **kw)

    def user(name, actions):
        iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
        return key

    agent = user("autoid-agent", ["sts:AssumeRole", "sts:TagSession", "secretsmanager:GetSecretValue"])
    iam.create_role(RoleName="autoid-demo", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"],
                       "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/autoid-agent"}}]}))
    iam.put_role_policy(RoleName="autoid-demo", PolicyName="read-secrets", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": "*"}]}))
    operator = user("autoid-operator", ["secretsmanager:PutSecretValue"])
    with open(token_file) as f:
        token = f.read().rstrip("\n")
    secrets = boto3.client("secretsmanager", **kw)
    secrets.create_secret(Name=secret_name, SecretString=token)
    secrets.create_secret(Name="autoid/demo/greeting", SecretString="hello from Secrets Manager, signed by the gateway")

    os.makedirs(out_dir, mode=0o700, exist_ok=True)
    for name, key in (("agent", agent), ("operator", operator)):
        path = os.path.join(out_dir, f"{name}.env")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"AWS_ACCESS_KEY_ID={key['AccessKeyId']}\n")
            f.write(f"AWS_SECRET_ACCESS_KEY={key['SecretAccessKey']}\n")


if __name__ == "__main__":
    main()
