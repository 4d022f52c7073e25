# The whole dev example planned and applied against a mocked AWS provider:
# `terraform test` in examples/dev-single-az (scripts/test-deploy.sh).

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = {
      name = "us-east-1"
    }
  }

  mock_data "aws_ssm_parameter" {
    defaults = {
      value = "ami-0123456789abcdef0"
    }
  }

  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }

  mock_resource "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::fjord-dev-test"
    }
  }

  mock_resource "aws_ssm_parameter" {
    defaults = {
      arn = "arn:aws:ssm:us-east-1:123456789012:parameter/fjord-dev/foundationdb/cluster-file"
    }
  }

  mock_resource "aws_lb" {
    defaults = {
      arn      = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/fjord-dev-nlb/0123456789abcdef"
      dns_name = "fjord-dev-nlb.elb.us-east-1.amazonaws.com"
    }
  }

  mock_resource "aws_lb_target_group" {
    defaults = {
      arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/fjord-dev/0123456789abcdef"
    }
  }

  mock_resource "aws_launch_template" {
    defaults = {
      id             = "lt-0123456789abcdef0"
      latest_version = 1
    }
  }

  mock_resource "aws_autoscaling_group" {
    defaults = {
      arn = "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:00000000-0000-0000-0000-000000000000:autoScalingGroupName/fjord-dev"
    }
  }
}

variables {
  bucket_name          = "fjord-dev-test"
  allowed_client_cidrs = ["10.0.0.0/8"]
}

run "dev_cluster" {
  command = apply

  assert {
    condition     = output.bootstrap_address == "fjord-dev-nlb.elb.us-east-1.amazonaws.com:9092"
    error_message = "the bootstrap address must be the load balancer's port 9092."
  }

  assert {
    condition     = output.gateway_url == "http://fjord-dev-nlb.elb.us-east-1.amazonaws.com:8080"
    error_message = "the gateway URL must be the load balancer's port 8080."
  }

  assert {
    condition     = output.bucket_name == "fjord-dev-test"
    error_message = "the bucket output must name the bucket."
  }

  assert {
    condition     = length(module.fdb.coordinators) == 3
    error_message = "the dev cluster runs FoundationDB in double mode: 3 coordinators."
  }
}

# From the container image: the launch templates' boot script runs the image
# with Docker and stops it with SIGTERM; no binary is installed.
run "dev_cluster_from_the_image" {
  command = plan

  variables {
    agent_image = "registry.example.com/fjord/agent@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  }

  assert {
    condition     = strcontains(base64decode(module.agents.jobs_launch_template_user_data), "docker run --rm --name fjord --network host")
    error_message = "with agent_image, the agent runs from the image."
  }

  assert {
    condition     = strcontains(base64decode(module.agents.jobs_launch_template_user_data), "docker stop --signal SIGTERM")
    error_message = "the image's agent is stopped with SIGTERM."
  }

  assert {
    condition     = !strcontains(base64decode(module.agents.jobs_launch_template_user_data), "test -x /usr/local/bin/fjord")
    error_message = "with agent_image, no binary is expected on the host."
  }
}
