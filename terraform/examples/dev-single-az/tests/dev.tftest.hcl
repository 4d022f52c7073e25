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
